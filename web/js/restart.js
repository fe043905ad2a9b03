// The Restart button of a stream's card: stop the stream and start it again under the same id with the
// same URLs and size, so a viewer's player and the gateway keep their addresses. The workflow is the
// linked graph's current one (or what the stream last accepted; livecontrol.js); a stream this page did
// not start has no workflow the page knows, so its button says so instead of guessing.
import { el } from "./common/dom.js";
import { FINAL_STATES } from "./common/format.js";
import { toast, toastFailure, trickleFetch } from "./common/http.js";
import { revealNode, showNodeErrors } from "./common/node_errors.js";
import { streamStore } from "./common/store.js";
import { holdTestSource } from "./golive.js";
import { linkStreamToGraph, liveStateOf, promptForRestart } from "./livecontrol.js";

/** The start request that brings `config` (a status's config) back with `prompt`. */
export function restartRequest(streamId, config, prompt) {
  const body = {
    gateway_request_id: streamId,
    subscribe_url: config.subscribe_url,
    publish_url: config.publish_url,
    params: { width: config.width, height: config.height, prompt },
  };
  for (const [field, key] of [["control_url", "control_url"], ["events_url", "events_url"],
    ["manifest_id", "manifest_id"], ["stream_id", "runner_stream_id"]]) {
    if (config[key]) body[field] = config[key];
  }
  return body;
}

/** Stop (when live) and start `streamId` again; returns true once the new start was accepted. */
export async function restartStream(streamId) {
  const current = await trickleFetch(`/stream/${encodeURIComponent(streamId)}/status`);
  if (!current.ok) {
    toastFailure(`Trickle: cannot restart ${streamId}`, current);
    return false;
  }
  const prompt = await promptForRestart(streamId);
  if (!prompt) {
    toast("error", `Trickle: cannot restart ${streamId}`, "It was not started from this page, so its workflow is unknown here.");
    return false;
  }
  const release = holdTestSource(streamId); // a local test source feeding it must survive the stop
  try {
    if (!FINAL_STATES.has(current.data.state)) {
      const stopped = await trickleFetch(`/stream/${encodeURIComponent(streamId)}/stop`, { method: "POST" });
      if (!stopped.ok) {
        toastFailure(`Trickle: cannot restart ${streamId}`, stopped);
        return false;
      }
      if (stopped.data?.request_id) streamStore.apply(stopped.data);
    }
    const body = restartRequest(streamId, current.data.config || {}, prompt);
    const started = await trickleFetch("/stream/start", { method: "POST", body });
    if (!started.ok) {
      const entries = started.data?.node_errors ? showNodeErrors(started.data.node_errors) : [];
      if (entries[0]?.found) revealNode(entries[0].nodeId);
      toastFailure(`Trickle: ${streamId} stopped but did not start again`, started);
      return false;
    }
    if (started.data?.request_id) streamStore.apply(started.data);
    linkStreamToGraph(streamId, prompt);
    toast("success", "Trickle: restarted", `Stream ${streamId} restarted with the same id and URLs`);
    return true;
  } finally {
    release();
  }
}

/** The card's Restart button: {element, update(status)}. */
export function createRestartButton(streamId) {
  const button = el("button", { type: "button", class: "trickle-button trickle-restart",
    title: `Stop and start ${streamId} again (same id and URLs)` }, "Restart");
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
    const known = liveStateOf(streamId) !== null;
    button.disabled = busy || !known;
    button.title = known ? `Stop and start ${streamId} again (same id and URLs)`
      : "Started elsewhere (or before this page loaded): this page does not know its workflow";
  };
  return { element: button, update };
}
