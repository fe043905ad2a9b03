// "Go live from the current graph": a form that starts a stream with the workflow on the canvas
// (app.graphToPrompt().output is the API-format workflow), plus a one-click local test source (the
// dev relay and the synthetic source on ComfyUI's own server) so a stream can be tried without a gateway.
// Validation errors come back as ComfyUI node_errors and are shown on the nodes (common/node_errors.js).
import { app } from "../../../scripts/app.js";
import { el } from "./common/dom.js";
import { describeNodeError } from "./common/format.js";
import { getSetting, toast, toastFailure, trickleFetch } from "./common/http.js";
import { clearNodeErrors, revealNode, showNodeErrors } from "./common/node_errors.js";
import { SETTING } from "./common/settings.js";
import { streamStore } from "./common/store.js";

/** Most node errors listed in one toast; the form lists them all. */
const TOAST_ERROR_LINES = 3;

/** The request body of POST /stream/start for the current graph. */
export async function buildStartRequest({ subscribeUrl, publishUrl, streamId, width, height }) {
  const { output } = await app.graphToPrompt();
  const body = {
    subscribe_url: subscribeUrl,
    publish_url: publishUrl,
    gateway_request_id: streamId || `ui-${Date.now().toString(36)}`,
    params: { width, height, prompt: output },
  };
  if (streamId) body.stream_id = streamId;
  return body;
}

/**
 * Start a stream from the canvas. Returns {ok, requestId} or {ok: false, message, nodeErrors}; shows
 * the outcome itself (toast, node marks).
 */
export async function startFromGraph(fields) {
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
  const result = await trickleFetch("/stream/start", { method: "POST", body });
  if (result.ok) {
    const requestId = result.data?.request_id ?? body.stream_id ?? body.gateway_request_id;
    if (!streamStore.get(requestId)) {
      streamStore.apply({ request_id: requestId, state: result.data?.state ?? "starting",
        config: result.data?.config ?? {}, counters: {}, error: null });
    }
    streamStore.focus(requestId);
    toast("success", "Trickle: live", `Stream ${requestId} started`);
    return { ok: true, requestId };
  }
  const nodeErrors = result.data?.node_errors;
  if (nodeErrors && Object.keys(nodeErrors).length) {
    const entries = showNodeErrors(nodeErrors);
    const lines = entries.map((entry) => describeNodeError(entry, entry.title));
    const more = lines.length > TOAST_ERROR_LINES ? `\n(and ${lines.length - TOAST_ERROR_LINES} more)` : "";
    toast("error", `Trickle: ${result.message}`, lines.slice(0, TOAST_ERROR_LINES).join("\n") + more);
    return { ok: false, message: result.message, entries };
  }
  toastFailure("Trickle: not started", result);
  return { ok: false, message: result.message, entries: [] };
}

/** Ask the server for a local test source; returns {ok, subscribeUrl, publishUrl} or {ok: false}. */
export async function startTestSource({ width, height }) {
  const result = await trickleFetch("/trickle/test-source", { method: "POST", body: { width, height } });
  const data = result.data || {};
  const urls = data.urls || data;
  if (!result.ok || !urls.subscribe_url || !urls.publish_url) {
    toastFailure("Trickle: local test source failed", result.ok ? { ...result, message: "no URLs in the answer" } : result);
    return { ok: false };
  }
  return { ok: true, subscribeUrl: urls.subscribe_url, publishUrl: urls.publish_url, source: data };
}

function field(label, input) {
  return [el("label", { for: input.id }, label), input];
}

/** The Go live form (used by the sidebar tab). */
export function createGoLiveForm() {
  const input = (id, attrs) => el("input", { id, name: id, ...attrs });
  const subscribe = input("trickle-subscribe-url", { type: "url", placeholder: "http://host:port/stream-in",
    value: getSetting(SETTING.subscribeUrl) });
  const publish = input("trickle-publish-url", { type: "url", placeholder: "http://host:port/stream-out",
    value: getSetting(SETTING.publishUrl) });
  const streamId = input("trickle-stream-id", { type: "text", placeholder: "automatic" });
  const width = input("trickle-width", { type: "number", min: 16, max: 4096, step: 8, value: getSetting(SETTING.width) });
  const height = input("trickle-height", { type: "number", min: 16, max: 4096, step: 8, value: getSetting(SETTING.height) });
  const message = el("div", { class: "trickle-form-message", role: "alert" });
  const errorList = el("ul", { class: "trickle-node-errors" });
  const goLive = el("button", { type: "submit", class: "trickle-button trickle-button-primary",
    id: "trickle-go-live" }, "Go live");
  const testSource = el("button", { type: "button", class: "trickle-button", id: "trickle-test-source",
    title: "Start the built-in synthetic source on this server's dev relay and stream the graph from it" },
  "Local test source");

  const size = () => ({ width: Number(width.value) || 0, height: Number(height.value) || 0 });

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

  function validSize() {
    const { width: w, height: h } = size();
    if (w >= 16 && h >= 16) return true;
    showOutcome({ ok: false, message: "Width and height must be at least 16 pixels." });
    return false;
  }

  const form = el("form", { class: "trickle-form", id: "trickle-go-live-form", novalidate: true }, [
    ...field("Subscribe URL", subscribe),
    ...field("Publish URL", publish),
    ...field("Stream id", streamId),
    el("label", {}, "Size"),
    el("div", { class: "trickle-size" }, [width, el("span", {}, "x"), height]),
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
    if (!validSize()) return;
    run(() => startFromGraph({ subscribeUrl: subscribe.value.trim(), publishUrl: publish.value.trim(),
      streamId: streamId.value.trim(), ...size() }));
  });

  testSource.addEventListener("click", () => {
    if (!validSize()) return;
    run(async () => {
      const source = await startTestSource(size());
      if (!source.ok) return { ok: false, message: "The local test source did not start.", entries: [] };
      return startFromGraph({ subscribeUrl: source.subscribeUrl, publishUrl: source.publishUrl,
        streamId: streamId.value.trim(), ...size() });
    });
  });

  return form;
}

app.registerExtension({ name: "Trickle.GoLive" });
