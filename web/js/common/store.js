// The browser's picture of every stream, fed by one GET /streams and then by `trickle.status` /
// `trickle.removed` events (common/feed.js). Pure: no ComfyUI imports, so tests/js can drive it.
import { isLive } from "./format.js";

export class StreamStore {
  constructor() {
    this.streams = new Map(); // request_id -> status object
    this.listeners = new Set();
    // The stream this page started last; the TrickleOutput node preview follows it.
    this.focusedId = null;
    this.tick = 0;
    this.updatedAt = new Map(); // request_id -> tick of its last event
  }

  /** A point in the event sequence; see replaceAll. */
  mark() {
    return this.tick;
  }

  /** Calls `listener(store)` after every change; returns the unsubscribe function. */
  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  notify() {
    for (const listener of [...this.listeners]) {
      try {
        listener(this);
      } catch (error) {
        console.error("[Trickle] store listener failed", error);
      }
    }
  }

  /** Merge one status object (a `trickle.status` event or a REST answer). */
  apply(status) {
    const id = status?.request_id;
    if (!id) return false;
    this.tick += 1;
    this.streams.set(String(id), status);
    this.updatedAt.set(String(id), this.tick);
    this.notify();
    return true;
  }

  remove(requestId) {
    this.tick += 1;
    this.updatedAt.set(String(requestId), this.tick);
    const removed = this.streams.delete(String(requestId));
    if (removed) this.notify();
    return removed;
  }

  /**
   * Replace everything with a GET /streams answer ({id: status}). Streams that got an event after
   * `sinceMark` (taken before the request went out) keep what the event said: it is newer.
   */
  replaceAll(streamsById, sinceMark = Infinity) {
    const fresher = (id) => (this.updatedAt.get(id) ?? -Infinity) > sinceMark;
    const next = new Map();
    for (const [key, status] of Object.entries(streamsById || {})) {
      const id = String(status?.request_id ?? key);
      if (!fresher(id)) next.set(id, { ...status, request_id: id });
    }
    for (const [id, status] of this.streams) {
      if (fresher(id)) next.set(id, status);
    }
    for (const id of this.updatedAt.keys()) {
      if (fresher(id) && !this.streams.has(id)) next.delete(id); // removed after the mark
    }
    this.streams = next;
    this.notify();
  }

  get(requestId) {
    return this.streams.get(String(requestId)) ?? null;
  }

  /** Newest start first (`started_at`), so cards keep their place while streams change state. */
  list() {
    const started = (s) => s?.started_at ?? 0;
    return [...this.streams.values()].sort(
      (a, b) => started(b) - started(a) || String(a.request_id).localeCompare(String(b.request_id)),
    );
  }

  focus(requestId) {
    this.focusedId = requestId ? String(requestId) : null;
    this.notify();
  }

  /** The stream a node preview should show: the focused one while it is live, else the newest live one. */
  previewTarget() {
    const focused = this.focusedId ? this.get(this.focusedId) : null;
    if (focused && isLive(focused)) return focused.request_id;
    const live = this.list().filter(isLive);
    return live.length ? live[0].request_id : null;
  }
}

/** One store per page: every feature module imports this same instance. */
export const streamStore = new StreamStore();
