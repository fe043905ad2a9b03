// Live control from the canvas: a stream started from a graph (golive.js) stays linked to that graph's
// workflow, and every edit of it goes to the running stream through POST /stream/{id}/update
// (debounced; common/live_updater.js owns the timing and the applied / applying / rejected state).
// A rejected edit marks the failing nodes the way a failed start does (common/node_errors.js); the
// stream keeps running its previous generation.
//
// How edits are noticed. Candidates were LiteGraph's per-node/widget callbacks, graph.onAfterChange,
// or a periodic compare of app.graphToPrompt(). Widget callbacks miss link edits, node deletes, pastes,
// undo and subgraph edits; onAfterChange is one slot other extensions overwrite; polling costs a full
// graphToPrompt per tick even when nothing changed. We use the frontend's own change tracker instead:
// it serialises and compares the graph after every mouse-up, key press, widget prompt dialog, undo/redo
// and paste, and announces a real change with the `graphChanged` api event. DOM widgets (multiline text,
// Vue widgets) change while the user types, before any of those, so their `input`/`change` events
// count too. Every signal only restarts the debounce; what is sent is decided by comparing the API
// prompt (graphToPrompt().output) with the last one sent, so moving a node or selecting sends nothing.
import { api } from "../../../scripts/api.js";
import { app } from "../../../scripts/app.js";
import { el } from "./common/dom.js";
import { describeNodeError } from "./common/format.js";
import { toast, trickleFetch } from "./common/http.js";
import { LIVE_STATES, LiveUpdater } from "./common/live_updater.js";
import { clearNodeErrors, showNodeErrors } from "./common/node_errors.js";
import { streamStore } from "./common/store.js";

/** streamId -> {updater, workflow}: `workflow` is what the stream was started from (see activeWorkflow). */
const links = new Map();
const listeners = new Set();
let marksFrom = null; // the stream whose rejected update put the node marks on the canvas

/** The workflow on the canvas: the workflow store's entry (one per open tab), else the graph itself. */
function activeWorkflow() {
  return app.extensionManager?.workflow?.activeWorkflow ?? app.graph ?? null;
}

function isOnCanvas(link) {
  return link.workflow !== null && link.workflow === activeWorkflow();
}

function notify() {
  for (const listener of [...listeners]) {
    try {
      listener();
    } catch (error) {
      console.error("[Trickle] live control listener failed", error);
    }
  }
}

/** Node marks follow the newest outcome of the graph on the canvas: rejected marks, applied clears. */
function showOutcome(streamId, link) {
  const { updater } = link;
  if (updater.state === LIVE_STATES.rejected && isOnCanvas(link)) {
    if (updater.nodeErrors) {
      const entries = showNodeErrors(updater.nodeErrors);
      marksFrom = streamId;
      const lines = entries.slice(0, 3).map((entry) => describeNodeError(entry, entry.title));
      toast("error", `Trickle: edit not applied to ${streamId} (it keeps running)`, lines.join("\n"));
    } else {
      toast("error", `Trickle: edit not applied to ${streamId}`, updater.message);
    }
  } else if (updater.state === LIVE_STATES.applied && marksFrom === streamId) {
    clearNodeErrors();
    marksFrom = null;
  }
}

/** Link `streamId` to the workflow on the canvas; `prompt` is what it started with. */
export function linkStreamToGraph(streamId, prompt) {
  const id = String(streamId);
  links.get(id)?.updater.end();
  const link = { workflow: activeWorkflow(), updater: null };
  link.updater = new LiveUpdater({
    initialPrompt: prompt,
    // Only the linked workflow's graph is read; with another tab on the canvas nothing is sent.
    readPrompt: async () => (isOnCanvas(link) ? (await app.graphToPrompt()).output : null),
    send: (next) => trickleFetch(`/stream/${encodeURIComponent(id)}/update`, {
      method: "POST", body: { params: { prompt: next } },
    }),
    onChange: () => {
      showOutcome(id, link);
      notify();
    },
  });
  links.set(id, link);
  link.updater.statusChanged(streamStore.get(id));
  notify();
}

/** The live links of the workflow on the canvas (the Run button updates these). */
export function linksOnCanvas() {
  return [...links.entries()]
    .filter(([, link]) => link.updater.state !== LIVE_STATES.ended && isOnCanvas(link))
    .map(([streamId, link]) => ({ streamId, updater: link.updater }));
}

/** The newest prompt `streamId` accepted through its link (what a restart runs), or null when unlinked. */
export function linkedPromptOf(streamId) {
  return links.get(String(streamId))?.updater.acceptedPrompt ?? null;
}

/** {state, message} of a linked stream, or null. */
export function liveStateOf(streamId) {
  const link = links.get(String(streamId));
  return link ? { state: link.updater.state, message: link.updater.message } : null;
}

/** Calls `listener()` after every live-state change; returns the unsubscribe function. */
export function onLiveStateChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

const LABELS = { applied: "edits applied", applying: "applying edit…", rejected: "edit rejected", ended: "" };

function renderBadge(badge, live) {
  const shown = Boolean(live && live.state !== LIVE_STATES.ended);
  badge.hidden = !shown;
  badge.dataset.liveState = shown ? live.state : "";
  badge.textContent = shown ? LABELS[live.state] : "";
  badge.title = shown ? live.message || "The stream follows this graph's edits" : "";
}

/** The live-control state of one stream's card: {element, update()}. */
export function createLiveStateBadge(streamId) {
  const badge = el("span", { class: "trickle-live-state", hidden: true });
  const update = () => renderBadge(badge, liveStateOf(streamId));
  const unsubscribe = onLiveStateChange(update);
  update();
  return { element: badge, update, destroy: unsubscribe };
}

/** A line for under the Go live form: which streams follow the graph on the canvas, and their state. */
export function createLinkStatusLine() {
  const line = el("div", { class: "trickle-live-link", id: "trickle-live-link", hidden: true });
  let unsubscribe = null;
  const update = () => {
    if (line.dataset.mounted && !line.isConnected) {
      unsubscribe(); // the panel was closed: this line is gone for good
      return;
    }
    if (line.isConnected) line.dataset.mounted = "1";
    const onCanvas = linksOnCanvas();
    line.hidden = onCanvas.length === 0;
    line.dataset.liveState = onCanvas.map(({ updater }) => updater.state).join(" ");
    line.replaceChildren(...onCanvas.map(({ streamId, updater }) => el("div", {}, [
      `Live: ${streamId} follows this graph — `,
      el("span", { class: "trickle-live-state", "data-live-state": updater.state, title: updater.message },
        LABELS[updater.state]),
      updater.state === LIVE_STATES.rejected && updater.message ? ` (${updater.message})` : "",
    ])));
  };
  unsubscribe = onLiveStateChange(update);
  update();
  return line;
}

const CSS = `
.trickle-live-state { border-radius: 10px; padding: 1px 8px; font-size: 11px; background: #4a5568; color: #fff; }
.trickle-live-state[data-live-state="applied"] { background: #276749; }
.trickle-live-state[data-live-state="applying"] { background: #b7791f; }
.trickle-live-state[data-live-state="rejected"] { background: #c53030; }
.trickle-live-link { font-size: 12px; opacity: .9; }
.trickle-stream-head { flex-wrap: wrap; } /* id, state, live state, Restart and Stop fit a narrow tab */
`;

function scheduleEdit(event) {
  if (event?.target?.closest?.(".trickle-panel")) return; // typing in our own form is no graph edit
  for (const { updater } of linksOnCanvas()) updater.edit();
}

app.registerExtension({
  name: "Trickle.LiveControl",
  setup() {
    if (!document.getElementById("trickle-live-styles")) {
      document.head.append(el("style", { id: "trickle-live-styles" }, CSS));
    }
    api.addEventListener("graphChanged", scheduleEdit);
    document.addEventListener("input", scheduleEdit, true);
    document.addEventListener("change", scheduleEdit, true);
    streamStore.subscribe((store) => {
      for (const [streamId, link] of links) link.updater.statusChanged(store.get(streamId));
    });
    // Switching workflow tabs changes which links are on the canvas.
    api.addEventListener("graphChanged", notify);
  },
});
