// The Restart button of a stream's card: POST /stream/{id}/restart stops the stream and starts it again under
// the same id with the same config (URLs, size, and the workflow it runs now, live edits included), so a
// viewer's player and the gateway keep their addresses. A local test source feeding the stream is held
// through the stop, and a stream linked to a graph stays linked (livecontrol.js).
import { el } from "./common/dom.js";
import { toast, toastFailure, trickleFetch } from "./common/http.js";
import { holdTestSource } from "./golive.js";
import { linkedPromptOf, linkStreamToGraph } from "./livecontrol.js";

/** Stop (when live) and start `streamId` again; returns true once the new run was accepted. */
export async function restartStream(streamId) {
  const release = holdTestSource(streamId); // a local test source feeding it must survive the stop
  try {
    const started = await trickleFetch(`/stream/${encodeURIComponent(streamId)}/restart`, { method: "POST" });
    if (!started.ok) {
      toastFailure(`Trickle: cannot restart ${streamId}`, started);
      return false;
    }
    const linked = linkedPromptOf(streamId);
    if (linked) linkStreamToGraph(streamId, linked);
    toast("success", "Trickle: restarted", `Stream ${streamId} restarted with the same id and URLs`);
    return true;
  } finally {
    release();
  }
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
