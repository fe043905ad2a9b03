// Local test sources this page started, by the stream they feed, and when to stop each: once its stream
// ended, i.e. a final state seen AFTER that stream was seen live. With a reused stream id the store still
// holds the previous stream's final state for a moment; reading that as the new stream's end stopped the
// new source, and the new stream "completed" after a couple of frames (issue 13 item 8).
// Pure: no ComfyUI imports, so tests/js can drive it.
import { FINAL_STATES, isLive } from "./format.js";

export class TestSourceTracker {
  constructor() {
    this.sources = new Map(); // stream id -> {name, seenLive}
  }

  /** Source `name` now feeds stream `streamId` (its stream has not been seen live yet). */
  add(streamId, name) {
    this.sources.set(String(streamId), { name, seenLive: false });
  }

  /** Forget the source of `streamId`; returns its name, or null when there is none. */
  take(streamId) {
    const source = this.sources.get(String(streamId));
    this.sources.delete(String(streamId));
    return source?.name ?? null;
  }

  /** The stream ids whose source should stop now, given the store (a StreamStore). */
  ended(store) {
    const ids = [];
    for (const [id, source] of this.sources) {
      const status = store.get(id);
      if (isLive(status)) source.seenLive = true;
      else if (source.seenLive && FINAL_STATES.has(status?.state)) ids.push(id);
    }
    return ids;
  }
}
