// Streams being restarted (POST /stream/{id}/restart): whatever this page feeds them with, a local test
// source or the browser camera, must outlive the old run's stop. A hold lasts from the request until the
// store shows the new run (another `started_at`, in a state before "stopping"), so a "stopped" event of the
// old run that arrives after the answer is not read as the end; a restart that failed releases it at once.
// Pure: no ComfyUI imports, so tests/js can drive it.
import { streamStore } from "./store.js";

const NEW_RUN_STATES = new Set(["starting", "waiting", "running"]);

export class RestartHolds {
  constructor() {
    this.holds = new Map(); // stream id -> {oldStartedAt, accepted}
  }

  /** Hold `streamId` while it restarts; `status` is what the store shows of its old run. */
  hold(streamId, status) {
    this.holds.set(String(streamId), { oldStartedAt: status?.started_at, accepted: false });
  }

  /** The restart was accepted: the hold ends once the new run is seen (see `update`). */
  accepted(streamId) {
    const hold = this.holds.get(String(streamId));
    if (hold) hold.accepted = true;
  }

  /** The restart failed: nothing more to wait for. */
  release(streamId) {
    this.holds.delete(String(streamId));
  }

  /** Ends the holds of accepted restarts whose new run the store (a StreamStore) shows. */
  update(store) {
    for (const [id, hold] of this.holds) {
      const status = store.get(id);
      const newRun = NEW_RUN_STATES.has(status?.state) && status.started_at !== hold.oldStartedAt;
      if (hold.accepted && newRun) this.holds.delete(id);
    }
  }

  /** True while `streamId` restarts: a final state seen now belongs to the old run. */
  isHeld(streamId) {
    return this.holds.has(String(streamId));
  }
}

export const restartHolds = new RestartHolds();
streamStore.subscribe((store) => restartHolds.update(store));
