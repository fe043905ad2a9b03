// Pulls the newest output frame of a stream at a capped rate and hands it to every viewer of that
// stream. Pure: the fetch, timer and visibility functions are injected (tests/js uses fakes).
//
// Why pull (GET /trickle/preview/{id}.jpg) rather than push: a viewer asks only as often as its rate
// setting allows and only while it is on screen, one request at a time, so a slow page or network never
// queues frames on the server; the server encodes a frame only when someone asks and caches it, so any
// number of viewers cost one JPEG per distinct frame and the stream itself never waits on a preview.

/** How long to wait before asking again after an answer without a usable frame. */
export const IDLE_RETRY_MS = 1000;
/** How often a paused loop (hidden page, rate 0) looks again; no request is made while paused. */
export const PAUSED_RECHECK_MS = 250;

export class PreviewPoller {
  /**
   * @param {object} deps
   * @param {(streamId: string, etag: string|null) => Promise<{kind: "frame", image: any, etag: string|null}
   *   | {kind: "same"} | {kind: "none"} | {kind: "gone"}>} deps.fetchFrame
   * @param {() => number} deps.fps  current rate cap (0 pauses every loop)
   * @param {() => boolean} [deps.paused]  true while nobody can see previews (hidden page)
   * @param {(image: any) => void} [deps.release]  frees an image once every viewer drew it
   * @param {(fn: () => void, ms: number) => any} [deps.setTimer]
   * @param {(handle: any) => void} [deps.clearTimer]
   * @param {() => number} [deps.now]
   */
  constructor({ fetchFrame, fps, paused = () => false, release = () => {}, setTimer, clearTimer, now }) {
    this.fetchFrame = fetchFrame;
    this.fps = fps;
    this.paused = paused;
    this.release = release;
    this.setTimer = setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = clearTimer ?? ((handle) => clearTimeout(handle));
    this.now = now ?? (() => Date.now());
    this.loops = new Map(); // streamId -> {viewers: Set, etag, timer, busy, stopped}
    this.requests = 0;
  }

  /** `onFrame(image, streamId)` is called with each new frame; returns the unsubscribe function. */
  subscribe(streamId, onFrame) {
    const id = String(streamId);
    let loop = this.loops.get(id);
    if (!loop) {
      loop = { viewers: new Set(), etag: null, timer: null, busy: false, stopped: false };
      this.loops.set(id, loop);
      this.schedule(id, loop, 0);
    }
    loop.viewers.add(onFrame);
    return () => {
      loop.viewers.delete(onFrame);
      if (loop.viewers.size === 0) this.stop(id, loop);
    };
  }

  viewerCount(streamId) {
    return this.loops.get(String(streamId))?.viewers.size ?? 0;
  }

  stop(id, loop) {
    loop.stopped = true;
    if (loop.timer !== null) this.clearTimer(loop.timer);
    loop.timer = null;
    if (this.loops.get(id) === loop) this.loops.delete(id);
  }

  schedule(id, loop, delayMs) {
    if (loop.stopped) return;
    loop.timer = this.setTimer(() => {
      loop.timer = null;
      this.tick(id, loop);
    }, Math.max(0, delayMs));
  }

  async tick(id, loop) {
    if (loop.stopped || loop.busy) return;
    const fps = this.fps();
    if (!(fps > 0) || this.paused()) {
      this.schedule(id, loop, PAUSED_RECHECK_MS);
      return;
    }
    const period = 1000 / fps;
    const started = this.now();
    loop.busy = true;
    let answer;
    try {
      this.requests += 1;
      answer = await this.fetchFrame(id, loop.etag);
    } catch {
      answer = { kind: "none" };
    } finally {
      loop.busy = false;
    }
    if (loop.stopped) {
      if (answer?.kind === "frame") this.release(answer.image);
      return;
    }
    if (answer?.kind === "frame") {
      loop.etag = answer.etag ?? null;
      for (const viewer of [...loop.viewers]) {
        try {
          viewer(answer.image, id);
        } catch (error) {
          console.error("[Trickle] preview viewer failed", error);
        }
      }
      this.release(answer.image);
    }
    const usable = answer?.kind === "frame" || answer?.kind === "same";
    // The period counts from the request's start, so the rate stays at the cap however slow answers are.
    const wait = usable ? period - (this.now() - started) : Math.max(period, IDLE_RETRY_MS);
    this.schedule(id, loop, wait);
  }
}
