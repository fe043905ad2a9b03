// Keeps streamStore current: one GET /streams at start (and after a websocket reconnect), then the
// server's pushed `trickle.status` / `trickle.removed` events. No periodic polling.
import { api } from "../../../../scripts/api.js";
import { trickleFetch, toastFailure } from "./http.js";
import { streamStore } from "./store.js";

let started = false;

/** Idempotent: every feature calls it from its setup(); only the first call subscribes. */
export function startStreamFeed() {
  if (started) return;
  started = true;
  api.addEventListener("trickle.status", (event) => streamStore.apply(event.detail));
  api.addEventListener("trickle.removed", (event) => streamStore.remove(event.detail?.request_id));
  // Events sent while the socket was down are lost; one fresh listing catches up.
  api.addEventListener("reconnected", () => refreshStreams());
  refreshStreams();
}

/** Replace the store with GET /streams, keeping any event that arrived while the request was out. */
export async function refreshStreams() {
  const mark = streamStore.mark();
  const result = await trickleFetch("/streams");
  if (result.ok) {
    streamStore.replaceAll(result.data?.streams ?? {}, mark);
  } else {
    toastFailure("Trickle: cannot list streams", result);
  }
  return result;
}
