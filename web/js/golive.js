// "Go live from the current graph": a form that starts a stream with the workflow on the canvas
// (app.graphToPrompt().output is the API-format workflow), plus a one-click local test source (the
// dev relay and the synthetic source on ComfyUI's own server) so a stream can be tried without a gateway.
// Validation errors come back as ComfyUI node_errors and are shown on the nodes (common/node_errors.js).
// Width and height are checked with the server's own limits (GET /stream/limits) before anything is sent.
import { app } from "../../../scripts/app.js";
import { el } from "./common/dom.js";
import { describeNodeError } from "./common/format.js";
import { currentGraphKey } from "./common/graph_key.js";
import { getSetting, toast, toastFailure, trickleFetch } from "./common/http.js";
import { FALLBACK_LIMITS, sizeInputAttrs, sizeLimitsOf, sizeProblem } from "./common/limits.js";
import { clearNodeErrors, revealNode, showNodeErrors } from "./common/node_errors.js";
import { restartHolds } from "./common/restart_holds.js";
import { SETTING } from "./common/settings.js";
import { streamStore } from "./common/store.js";
import { TestSourceTracker } from "./common/test_sources.js";
import { linkStreamToGraph } from "./livecontrol.js";

/** Most node errors listed in one toast; the form lists them all. */
const TOAST_ERROR_LINES = 3;

/** A stream id for a start without one; also a valid relay channel name for the test source. */
function newStreamId() {
  return `ui-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

/** The request body of POST /stream/start for the current graph (`gateway_request_id` is the stream id). */
export async function buildStartRequest({ subscribeUrl, publishUrl, streamId, width, height }) {
  const { output } = await app.graphToPrompt();
  return {
    subscribe_url: subscribeUrl,
    publish_url: publishUrl,
    gateway_request_id: streamId || newStreamId(),
    params: { width, height, prompt: output },
  };
}

/**
 * Start a stream from the canvas. Returns {ok, requestId} or {ok: false, message, entries} (the node
 * errors, one per line of the form); shows the outcome itself (toast, node marks).
 */
export async function startFromGraph(fields) {
  const graphKey = currentGraphKey(); // the graph on the canvas now, before any await
  clearNodeErrors();
  let body;
  try {
    body = await buildStartRequest(fields);
  } catch (error) {
    const message = `Cannot read the graph: ${error?.message || error}`;
    toast("error", "Trickle: not started", message);
    return { ok: false, message, entries: [] };
  }
  if (!Object.keys(body.params.prompt || {}).length) {
    const message = "The graph is empty: add a Trickle Input, your processing nodes and a Trickle Output.";
    toast("error", "Trickle: not started", message);
    return { ok: false, message, entries: [] };
  }
  const sentAt = streamStore.mark();
  const result = await trickleFetch("/stream/start", { method: "POST", body });
  if (result.ok) {
    const requestId = result.data?.request_id ?? body.gateway_request_id;
    const state = result.data?.state ?? "starting";
    // an event of this id since the request went out is newer news of this stream (keep it); an older
    // entry is the finished stream that had this id before (replace it: its final state is not this one's)
    if ((streamStore.updatedAt.get(requestId) ?? -Infinity) <= sentAt) {
      streamStore.apply({ request_id: requestId, state, config: result.data?.config ?? {}, counters: {}, error: null });
    }
    streamStore.focus(requestId, graphKey);
    linkStreamToGraph(requestId, body.params.prompt); // edits of this graph now go to the stream
    if (state === "waiting") {
      toast("info", "Trickle: waiting for input", `Stream ${requestId} waits for its input channel to be published`);
    } else {
      toast("success", "Trickle: live", `Stream ${requestId} started`);
    }
    return { ok: true, requestId };
  }
  const nodeErrors = result.data?.node_errors;
  if (nodeErrors && Object.keys(nodeErrors).length) {
    const entries = showNodeErrors(nodeErrors);
    const first = entries.find((entry) => entry.found);
    if (first) revealNode(first.nodeId);
    const lines = entries.map((entry) => describeNodeError(entry, entry.title));
    const more = lines.length > TOAST_ERROR_LINES ? `\n(and ${lines.length - TOAST_ERROR_LINES} more)` : "";
    toast("error", "Trickle: fix the marked nodes to go live", lines.slice(0, TOAST_ERROR_LINES).join("\n") + more);
    return { ok: false, message: "The graph cannot stream: fix the marked nodes.", entries };
  }
  toastFailure("Trickle: not started", result);
  return { ok: false, message: result.message, entries: [] };
}

// Test sources this page started, by the stream they feed; each is stopped when its stream ends (or
// does not start), so a tried-out source never keeps publishing into the relay (common/test_sources.js).
const testSources = new TestSourceTracker();
const CHANNEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Start a local test source for stream `streamId`; returns {ok, subscribeUrl, publishUrl} or {ok: false}. */
export async function startTestSource({ streamId, width, height }) {
  const body = { width, height };
  if (CHANNEL_NAME.test(streamId) && !streamId.endsWith("-out")) body.name = streamId;
  const result = await trickleFetch("/trickle/test-source", { method: "POST", body });
  const data = result.data || {};
  if (result.status === 404) {
    const message = "This server has no local test source (the dev relay is off: COMFY_TRICKLE_DEV_RELAY=0).";
    toast("error", "Trickle: local test source unavailable", message);
    return { ok: false, message };
  }
  if (!result.ok || !data.subscribe_url || !data.publish_url) {
    toastFailure("Trickle: local test source failed", result.ok ? { ...result, message: "no URLs in the answer" } : result);
    return { ok: false, message: result.message || "The local test source did not start." };
  }
  testSources.add(streamId, data.name);
  return { ok: true, subscribeUrl: data.subscribe_url, publishUrl: data.publish_url };
}

/** Stop the test source feeding `streamId`, if this page started one and it still runs. */
export async function releaseTestSource(streamId) {
  const name = testSources.take(streamId);
  if (!name) return;
  // Ask first: a source that already finished is gone, and a 404 would only add noise to the console.
  const running = await trickleFetch("/trickle/test-source");
  if (!running.ok || !running.data?.sources?.[name]) return;
  await trickleFetch(`/trickle/test-source/${encodeURIComponent(name)}`, { method: "DELETE" });
}

function field(label, input) {
  return el("div", { class: "trickle-field" }, [el("label", { for: input.id }, label), input]);
}

/** The server's size limits; the fallback (its defaults) when the route cannot be read (e.g. 401). */
async function fetchSizeLimits() {
  const result = await trickleFetch("/stream/limits");
  return result.ok ? sizeLimitsOf(result.data) : FALLBACK_LIMITS;
}

/** The Go live form (used by the sidebar tab). */
export function createGoLiveForm() {
  const input = (id, attrs) => el("input", { id, name: id, ...attrs });
  const subscribe = input("trickle-subscribe-url", { type: "url", placeholder: "http://host:port/stream-in",
    value: getSetting(SETTING.subscribeUrl) });
  const publish = input("trickle-publish-url", { type: "url", placeholder: "http://host:port/stream-out",
    value: getSetting(SETTING.publishUrl) });
  const streamId = input("trickle-stream-id", { type: "text", placeholder: "automatic" });
  let limits = FALLBACK_LIMITS;
  const width = input("trickle-width", { type: "number", ...sizeInputAttrs(limits), value: getSetting(SETTING.width) });
  const height = input("trickle-height", { type: "number", ...sizeInputAttrs(limits), value: getSetting(SETTING.height) });
  fetchSizeLimits().then((served) => {
    limits = served;
    for (const [name, value] of Object.entries(sizeInputAttrs(limits))) {
      width.setAttribute(name, value);
      height.setAttribute(name, value);
    }
  });
  const message = el("div", { class: "trickle-form-message", role: "alert" });
  const errorList = el("ul", { class: "trickle-node-errors" });
  const goLive = el("button", { type: "submit", class: "trickle-button trickle-button-primary",
    id: "trickle-go-live" }, "Go live");
  const testSource = el("button", { type: "button", class: "trickle-button", id: "trickle-test-source",
    title: "Start the built-in synthetic source on this server's dev relay and stream the graph from it" },
  "Local test source");

  const size = () => ({ width: Number(width.value) || 0, height: Number(height.value) || 0 });
  /** The server's words for a bad width or height, or "" (checked before a test source or stream starts). */
  const sizeError = () => sizeProblem("width", width.value, limits) || sizeProblem("height", height.value, limits);
  // true (and the reason shown) when the size fields hold a size the server would refuse
  const refuseBadSize = () => {
    const problem = sizeError();
    if (problem) showOutcome({ ok: false, message: problem });
    return Boolean(problem);
  };

  function showOutcome(outcome) {
    message.textContent = outcome.ok ? "" : outcome.message || "";
    errorList.replaceChildren(
      ...(outcome.entries || []).map((entry) =>
        el("li", { "data-node-id": entry.nodeId, title: "Show this node", onclick: () => revealNode(entry.nodeId) },
          describeNodeError(entry, entry.title))),
    );
    if (outcome.ok) streamId.value = "";
  }

  async function run(action) {
    goLive.disabled = true;
    testSource.disabled = true;
    try {
      showOutcome(await action());
    } finally {
      goLive.disabled = false;
      testSource.disabled = false;
    }
  }

  const form = el("form", { class: "trickle-form", id: "trickle-go-live-form", novalidate: true }, [
    field("Subscribe URL", subscribe),
    field("Publish URL", publish),
    field("Stream id", streamId),
    el("div", { class: "trickle-field" }, [el("label", { for: width.id }, "Size (width x height)"),
      el("div", { class: "trickle-size" }, [width, el("span", {}, "x"), height])]),
    el("div", { class: "trickle-actions" }, [goLive, testSource]),
    message,
    errorList,
  ]);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!subscribe.value.trim() || !publish.value.trim()) {
      showOutcome({ ok: false, message: "Enter a subscribe URL and a publish URL, or use the local test source." });
      return;
    }
    if (refuseBadSize()) return;
    run(() => startFromGraph({ subscribeUrl: subscribe.value.trim(), publishUrl: publish.value.trim(),
      streamId: streamId.value.trim(), ...size() }));
  });

  testSource.addEventListener("click", () => {
    if (refuseBadSize()) return;
    run(async () => {
      const id = streamId.value.trim() || newStreamId();
      const source = await startTestSource({ streamId: id, ...size() });
      if (!source.ok) return { ok: false, message: source.message, entries: [] };
      const outcome = await startFromGraph({ subscribeUrl: source.subscribeUrl, publishUrl: source.publishUrl,
        streamId: id, ...size() });
      if (!outcome.ok) await releaseTestSource(id);
      return outcome;
    });
  });

  return form;
}

app.registerExtension({
  name: "Trickle.GoLive",
  setup() {
    streamStore.subscribe((store) => {
      for (const id of testSources.ended(store)) {
        if (!restartHolds.isHeld(id)) releaseTestSource(id);
      }
    });
  },
});
