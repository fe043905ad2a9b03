// The "Trickle" sidebar tab: the Go live form and every stream (started here or over REST) with its
// state, rates, frame counts, latency, uptime, last error, a live preview and a Stop button. Updated
// from streamStore, which the server's pushed events keep current (common/feed.js).
import { app } from "../../../scripts/app.js";
import { ensureStyles, el } from "./common/dom.js";
import { startStreamFeed } from "./common/feed.js";
import {
  FINAL_STATES, formatCount, formatFps, formatLatency, formatStreamError, formatUptime, isLive,
} from "./common/format.js";
import { toast, toastFailure, trickleFetch } from "./common/http.js";
import { createPreviewView } from "./common/preview.js";
import { SIDEBAR_TAB_ID } from "./common/settings.js";
import { streamStore } from "./common/store.js";
import { copyText, dismissStream, watchCommand } from "./common/stream_actions.js";
import { createGoLiveForm } from "./golive.js";
import { createCameraPanel } from "./camera.js";
import { createWatchView } from "./player.js";
import { createLinkStatusLine, createLiveStateBadge } from "./livecontrol.js";
import { createRestartButton } from "./restart.js";

const METRICS = [
  ["fps_in", "fps in", (c) => formatFps(c.fps_in)],
  ["fps_out", "fps out", (c) => formatFps(c.fps_out)],
  ["frames_in", "frames in", (c) => formatCount(c.frames_in)],
  ["frames_out", "frames out", (c) => formatCount(c.frames_out)],
  ["frames_dropped", "dropped", (c) => formatCount(c.frames_dropped)],
  ["latency_ms", "latency", (c) => formatLatency(c.latency_ms)],
  ["uptime_s", "uptime", (c) => formatUptime(c.uptime_s)],
];

export async function stopStream(requestId) {
  const result = await trickleFetch(`/stream/${encodeURIComponent(requestId)}/stop`, { method: "POST" });
  if (!result.ok) {
    toastFailure(`Trickle: cannot stop ${requestId}`, result);
    return false;
  }
  if (result.data?.request_id) streamStore.apply(result.data);
  toast("info", "Trickle: stopped", `Stream ${requestId} stopped`);
  return true;
}

/** One stream's card; `update(status)` refreshes it in place so the preview canvas is kept. */
/** The card's state in words: "waiting" is for the input channel (its publisher has not started yet), and a
 * running stream whose workflow has not put out its first frame says how long it has been warming up. */
function stateLabel(status) {
  if (status.state === "waiting") return "waiting for input";
  const warmUp = status.state === "running" ? status.warm_up : null;
  if (warmUp) return `warming up: ${Math.round(warmUp.waited_s)} s of ${warmUp.timeout_s} s`;
  return status.state || "unknown";
}

function createStreamCard(requestId) {
  const idLabel = el("span", { class: "trickle-stream-id", title: requestId }, requestId);
  const state = el("span", { class: "trickle-state" });
  const stop = el("button", { type: "button", class: "trickle-button trickle-button-danger trickle-stop",
    title: `Stop ${requestId}` }, "Stop");
  const values = {};
  const metrics = el("dl", { class: "trickle-metrics" },
    METRICS.flatMap(([key, label]) => {
      values[key] = el("dd", { "data-metric": key });
      return [el("dt", {}, label), values[key]];
    }));
  const error = el("div", { class: "trickle-stream-error" });
  const preview = createPreviewView({ emptyText: "stream ended" });
  const liveState = createLiveStateBadge(requestId); // live control (livecontrol.js, restart.js)
  const restart = createRestartButton(requestId);
  const dismiss = el("button", { type: "button", class: "trickle-button trickle-dismiss",
    title: `Remove the finished ${requestId} from the list` }, "Dismiss");
  const outputUrl = el("code", { class: "trickle-output-url" });
  const command = el("code", { class: "trickle-watch-command" }, watchCommand(requestId));
  const copy = el("button", { type: "button", class: "trickle-button trickle-copy-watch",
    title: "Copy the command that plays this stream's output" }, "Copy");
  const links = el("div", { class: "trickle-stream-links" }, [
    el("div", {}, [el("span", {}, "Output "), outputUrl]),
    el("div", {}, [el("span", {}, "Watch "), command, copy]),
  ]);
  const watch = createWatchView();
  const element = el("div", { class: "trickle-stream", "data-stream-id": requestId }, [
    el("div", { class: "trickle-stream-head" },
      [idLabel, state, liveState.element, watch.button, restart.element, stop, dismiss]),
    preview.element, watch.element, metrics, links, error,
  ]);

  copy.addEventListener("click", () => copyText(watchCommand(requestId)));
  dismiss.addEventListener("click", async () => {
    dismiss.disabled = true;
    if (!(await dismissStream(requestId))) dismiss.disabled = false;
  });

  stop.addEventListener("click", async () => {
    stop.disabled = true;
    const stopped = await stopStream(requestId);
    if (!stopped) stop.disabled = false;
  });

  function update(status) {
    const counters = status.counters || {};
    element.dataset.state = status.state || "";
    state.textContent = stateLabel(status);
    state.className = `trickle-state trickle-state-${status.state || "unknown"}`;
    for (const [key, , format] of METRICS) values[key].textContent = format(counters);
    error.textContent = formatStreamError(status.error);
    const live = isLive(status);
    const finished = FINAL_STATES.has(status.state);
    stop.hidden = finished;
    dismiss.hidden = !finished;
    outputUrl.textContent = status.config?.publish_url || "";
    command.textContent = watchCommand(requestId);
    if (!live) stop.disabled = false;
    preview.show(live ? requestId : null);
    preview.element.hidden = !live;
    watch.update(status, live);
    restart.update(status);
  }

  return { element, update, destroy: () => { preview.destroy(); watch.destroy(); liveState.destroy(); } };
}

/** Renders the tab into `container` and keeps it current until `destroy()`. */
function mountPanel(container) {
  ensureStyles();
  const camera = createCameraPanel();
  const list = el("div", { class: "trickle-streams", id: "trickle-stream-list" });
  const empty = el("div", { class: "trickle-empty" }, "No streams yet. Go live above, or POST /stream/start.");
  const panel = el("div", { class: "trickle-panel", id: "trickle-panel" }, [
    el("div", { class: "trickle-panel-head" }, [el("h2", {}, "Trickle live video")]),
    el("section", {}, [el("h3", {}, "Go live from the current graph"), createGoLiveForm(), createLinkStatusLine()]),
    el("section", {}, [el("h3", {}, "Go live with your camera"), camera.element]),
    el("section", {}, [el("h3", {}, "Streams"), empty, list]),
  ]);
  container.replaceChildren(panel);

  const cards = new Map();
  function render() {
    const statuses = streamStore.list();
    const seen = new Set();
    statuses.forEach((status, index) => {
      const id = String(status.request_id);
      seen.add(id);
      let card = cards.get(id);
      if (!card) {
        card = createStreamCard(id);
        cards.set(id, card);
      }
      card.update(status);
      if (list.children[index] !== card.element) list.insertBefore(card.element, list.children[index] ?? null);
    });
    for (const [id, card] of cards) {
      if (seen.has(id)) continue;
      card.destroy();
      card.element.remove();
      cards.delete(id);
    }
    empty.hidden = statuses.length > 0;
  }
  const unsubscribe = streamStore.subscribe(render);
  render();
  return () => {
    unsubscribe();
    camera.destroy();
    for (const card of cards.values()) card.destroy();
    cards.clear();
  };
}

let unmount = null;

app.registerExtension({
  name: "Trickle.Sidebar",
  setup() {
    startStreamFeed();
    app.extensionManager.registerSidebarTab({
      id: SIDEBAR_TAB_ID,
      icon: "pi pi-video",
      title: "Trickle",
      tooltip: "Trickle live streams",
      type: "custom",
      render(container) {
        unmount?.();
        unmount = mountPanel(container);
      },
      // Called when the tab is closed or unregistered: stop previews of a panel nobody sees.
      destroy() {
        unmount?.();
        unmount = null;
      },
    });
  },
});
