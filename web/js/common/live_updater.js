// One linked stream's side of live control: graph edits come in (`edit()`), at most one
// POST /stream/{id}/update goes out at a time, and the outcome is a state the UI shows:
//   applying  an update is being sent, or the server accepted it and the new generation is not live yet
//   applied   the stream runs what the graph says (the server's generation caught up)
//   rejected  the server refused the newest edit (400 node_errors, or another failure): the stream keeps
//             running the previous generation; the next edit tries again
//   ended     the stream is not running any more (404 / 409 / a final status): edits are not sent
// Pure: the prompt reader, the request and the timers are injected (tests/js drives it with fakes).

/** Quiet time after the last edit before the update goes out; the issue asks for <= 200 ms. */
export const EDIT_DEBOUNCE_MS = 150;

export const LIVE_STATES = Object.freeze({
  applied: "applied",
  applying: "applying",
  rejected: "rejected",
  ended: "ended",
});

/** HTTP statuses of POST /stream/{id}/update that mean "the stream is not running". */
const NOT_RUNNING = new Set([404, 409]);
const FINAL_STREAM_STATES = new Set(["stopped", "completed", "error"]);

export class LiveUpdater {
  /**
   * @param {object} deps
   * @param {() => Promise<object|null>} deps.readPrompt  the linked graph's API prompt now (null: not readable
   *   now, e.g. another workflow is on the canvas; nothing is sent)
   * @param {(prompt: object) => Promise<{ok: boolean, status: number, data: any, message: string}>} deps.send
   * @param {(updater: LiveUpdater) => void} [deps.onChange]  called after every state change
   * @param {object} [deps.initialPrompt]  the prompt the stream started with (already applied)
   * @param {(fn: () => void, ms: number) => any} [deps.setTimer]
   * @param {(handle: any) => void} [deps.clearTimer]
   * @param {number} [deps.debounceMs]
   */
  constructor({ readPrompt, send, onChange = () => {}, initialPrompt, setTimer, clearTimer,
    debounceMs = EDIT_DEBOUNCE_MS }) {
    this.readPrompt = readPrompt;
    this.send = send;
    this.onChange = onChange;
    this.setTimer = setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = clearTimer ?? ((handle) => clearTimeout(handle));
    this.debounceMs = debounceMs;
    this.state = LIVE_STATES.applied;
    this.message = "";
    this.nodeErrors = null;
    this.sentKey = initialPrompt ? JSON.stringify(initialPrompt) : null; // newest prompt sent (or started with)
    this.acceptedPrompt = initialPrompt ?? null; // newest prompt the server accepted
    this.targetGeneration = null; // generation an accepted update waits for
    this.lastStatus = null;
    this.timer = null;
    this.inFlight = null; // the promise of the running send loop
    this.again = false; // another edit arrived while a request was out
    this.forceNext = false;
    this.sends = 0;
  }

  /** A graph edit happened: send the graph's prompt once edits pause for `debounceMs`. */
  edit() {
    if (this.state === LIVE_STATES.ended) return;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.flush();
    }, this.debounceMs);
  }

  /**
   * Send the graph's prompt now (Run button, or the debounce ran out). `force` sends even an unchanged
   * prompt (the server treats it as a no-op), so a Run always gets an answer. Resolves when no request
   * is out any more.
   */
  flush({ force = false } = {}) {
    if (this.timer !== null) {
      this.clearTimer(this.timer);
      this.timer = null;
    }
    if (this.state === LIVE_STATES.ended) return Promise.resolve();
    this.forceNext = this.forceNext || force;
    if (this.inFlight) {
      this.again = true; // coalesced: the loop reads the newest prompt when this request is answered
      return this.inFlight;
    }
    this.inFlight = this.loop().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  async loop() {
    do {
      this.again = false;
      const force = this.forceNext;
      this.forceNext = false;
      let prompt;
      try {
        prompt = await this.readPrompt();
      } catch (error) {
        this.set(LIVE_STATES.rejected, `Cannot read the graph: ${error?.message || error}`);
        continue;
      }
      if (prompt === null || prompt === undefined) continue; // the linked graph is not on the canvas now
      const key = JSON.stringify(prompt);
      if (!force && key === this.sentKey) continue;
      this.sentKey = key;
      this.set(LIVE_STATES.applying, "");
      this.sends += 1;
      const result = await this.send(prompt);
      if (this.state === LIVE_STATES.ended) return;
      this.answered(result, prompt);
    } while (this.again && this.state !== LIVE_STATES.ended);
  }

  answered(result, prompt) {
    if (result.ok) {
      this.acceptedPrompt = prompt;
      const generation = result.data?.generation;
      this.targetGeneration = Number.isFinite(generation) ? generation : null;
      // 200 means accepted: the new generation takes over between two frames (`applied: false` means
      // a no-op, and its generation is the one already running). "applied" once the status shows it.
      this.set(this.targetGeneration === null ? LIVE_STATES.applied : LIVE_STATES.applying, "");
      this.checkCaughtUp(this.lastStatus);
      return;
    }
    if (NOT_RUNNING.has(result.status)) {
      this.set(LIVE_STATES.ended, result.message || "The stream is not running.");
      return;
    }
    const nodeErrors = result.data?.node_errors;
    this.set(LIVE_STATES.rejected, result.message || "The update was refused.",
      nodeErrors && Object.keys(nodeErrors).length ? nodeErrors : null);
  }

  /**
   * The stream's newest status (a `trickle.status` event): an accepted update is "applied" once the
   * stream's generation reached it with no update pending; a final state ends the link.
   */
  statusChanged(status) {
    if (!status) return;
    this.lastStatus = status;
    if (FINAL_STREAM_STATES.has(status.state)) {
      this.end(`The stream is ${status.state}.`);
      return;
    }
    if (!this.inFlight) this.checkCaughtUp(status); // while a request is out, its answer decides
  }

  checkCaughtUp(status) {
    if (!status || this.state !== LIVE_STATES.applying || this.targetGeneration === null) return;
    const generation = status.generation;
    // A server without generations in its status cannot say more than its 200 did.
    if (!Number.isFinite(generation) || (generation >= this.targetGeneration && !status.update_pending)) {
      this.set(LIVE_STATES.applied, "");
    }
  }

  /** Stop sending: the stream ended (or the link was dropped). */
  end(message = "") {
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    this.again = false;
    if (this.state !== LIVE_STATES.ended) this.set(LIVE_STATES.ended, message);
  }

  set(state, message, nodeErrors = null) {
    this.state = state;
    this.message = message;
    this.nodeErrors = nodeErrors;
    try {
      this.onChange(this);
    } catch (error) {
      console.error("[Trickle] live state listener failed", error);
    }
  }
}
