// The browser's picture of every stream, fed by one GET /streams and then by `trickle.status` /
// `trickle.removed` events (common/feed.js). Pure: no ComfyUI imports, so tests/js can drive it.
import { isLive } from "./format.js";

const GRAPH_BINDINGS_KEY = "trickle.streamGraphs";
const MAX_GRAPH_BINDINGS = 64;

function defaultStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // storage disabled in this browser: bindings last as long as the page
  }
}

export class StreamStore {
  constructor({ storage = defaultStorage() } = {}) {
    this.streams = new Map(); // request_id -> status object
    this.listeners = new Set();
    // The stream this page started last; the TrickleOutput node preview follows it.
    this.focusedId = null;
    // request_id -> key of the graph it was started from (common/graph_key.js); kept across reloads
    this.storage = storage;
    this.graphs = new Map(this.loadGraphBindings());
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

  /** `requestId` was just started by this page from graph `graphKey` (restarts keep the id, so the binding). */
  focus(requestId, graphKey = null) {
    this.focusedId = requestId ? String(requestId) : null;
    if (this.focusedId && graphKey) {
      this.graphs.delete(this.focusedId);
      this.graphs.set(this.focusedId, String(graphKey));
      while (this.graphs.size > MAX_GRAPH_BINDINGS) this.graphs.delete(this.graphs.keys().next().value);
      this.saveGraphBindings();
    }
    this.notify();
  }

  /**
   * The stream a node preview of graph `graphKey` should show: the live stream this page started from
   * that graph last (restarts keep it), never another graph's; null when none of them is live.
   */
  previewTarget(graphKey) {
    const bound = [...this.graphs].reverse();
    for (const [requestId, key] of bound) {
      const status = this.get(requestId);
      if (key === String(graphKey) && status && isLive(status)) return status.request_id;
    }
    return null;
  }

  loadGraphBindings() {
    try {
      const saved = JSON.parse(this.storage?.getItem(GRAPH_BINDINGS_KEY) ?? "[]");
      return Array.isArray(saved) ? saved.filter((pair) => Array.isArray(pair) && pair.length === 2) : [];
    } catch {
      return [];
    }
  }

  saveGraphBindings() {
    try {
      this.storage?.setItem(GRAPH_BINDINGS_KEY, JSON.stringify([...this.graphs]));
    } catch {
      // storage full or disabled: the binding still holds for this page
    }
  }
}

/** One store per page: every feature module imports this same instance. */
export const streamStore = new StreamStore();
