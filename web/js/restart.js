// The Restart button of a stream's card: POST /stream/{id}/restart stops the stream and starts it again under
// the same id with the same config (URLs, size, and the workflow it runs now, live edits included), so a
// viewer's player and the gateway keep their addresses. A local test source feeding the stream is held
// through the stop, and so is the browser camera (common/restart_holds.js); a stream linked to a graph stays
// linked (livecontrol.js).
import { el } from "./common/dom.js";
import { toast, toastFailure, trickleFetch } from "./common/http.js";
import { restartHolds } from "./common/restart_holds.js";
import { streamStore } from "./common/store.js";
import { linkedPromptOf, linkStreamToGraph } from "./livecontrol.js";

/** Stop (when live) and start `streamId` again; returns true once the new run was accepted. */
export async function restartStream(streamId) {
  restartHolds.hold(streamId, streamStore.get(streamId));
  let started;
  try {
    started = await trickleFetch(`/stream/${encodeURIComponent(streamId)}/restart`, { method: "POST" });
  } finally {
    if (started?.ok) restartHolds.accepted(streamId);
    else restartHolds.release(streamId);
  }
  if (!started.ok) {
    toastFailure(`Trickle: cannot restart ${streamId}`, started);
    return false;
  }
  const linked = linkedPromptOf(streamId);
  if (linked) linkStreamToGraph(streamId, linked);
  toast("success", "Trickle: restarted", `Stream ${streamId} restarted with the same id and URLs`);
  return true;
}

/** The card's Restart button: {element, update(status)}. */
export function createRestartButton(streamId) {
  const button = el("button", { type: "button", class: "trickle-button trickle-restart",
    title: `Stop and start ${streamId} again (same id, URLs and workflow)` }, "Restart");
  let busy = false;
  button.addEventListener("click", async () => {
    busy = true;
    button.disabled = true;
    try {
      await restartStream(streamId);
    } finally {
      busy = false;
      button.disabled = false;
    }
  });
  const update = (status) => {
    button.hidden = !status || (["starting", "stopping"].includes(status.state) && !busy);
  };
  return { element: button, update };
}
