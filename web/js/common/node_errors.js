// Shows a 400 answer's `node_errors` on the canvas the way ComfyUI shows its own validation errors:
// the failing nodes get the red error outline, the named inputs their error mark, and the canvas is
// redrawn. Uses only node/slot fields LiteGraph draws (`has_errors`, `slot.hasErrors`); no prototype is
// touched. Where the frontend exposes a writable `app.lastNodeErrors` (its own error state) it is set
// too, so its error panels list ours; frontend 1.32.9 exposes it read-only, so that part is skipped there.
import { app } from "../../../../scripts/app.js";
import { listNodeErrors } from "./format.js";

let marked = []; // [{node, hadErrors, slots: [slot]}]

function hasLastNodeErrorsSetter() {
  for (let proto = app; proto; proto = Object.getPrototypeOf(proto)) {
    const descriptor = Object.getOwnPropertyDescriptor(proto, "lastNodeErrors");
    if (descriptor) return Boolean(descriptor.set) || descriptor.writable === true;
  }
  return false;
}

/** The graph node an execution id names ("12", or "5:3" inside subgraph 5: the outer node is marked). */
export function findNode(nodeId) {
  const graph = app.graph;
  if (!graph) return null;
  const outer = String(nodeId).split(":")[0];
  return graph.getNodeById?.(outer) ?? graph.getNodeById?.(Number(outer)) ?? null;
}

// The canvas reads these flags at draw time; the Vue node renderer (Nodes 2.0) listens for graph events
// instead, so each change is announced the way the frontend announces its own error flags.
function setHasErrors(node, value) {
  const oldValue = Boolean(node.has_errors);
  node.has_errors = value;
  if (oldValue !== value) {
    node.graph?.trigger?.("node:property:changed", { nodeId: node.id, property: "has_errors", oldValue, newValue: value });
  }
}

function setSlotErrors(node, slot, value) {
  slot.hasErrors = value;
  node.graph?.trigger?.("node:slot-errors:changed", { nodeId: node.id });
}

function redraw() {
  app.graph?.setDirtyCanvas?.(true, true);
  app.canvas?.draw?.(true, true);
}

/** Remove the marks placed by showNodeErrors (before a new attempt, or after a success). */
export function clearNodeErrors() {
  for (const { node, hadErrors, slots } of marked) {
    setHasErrors(node, hadErrors);
    for (const slot of slots) setSlotErrors(node, slot, false);
  }
  marked = [];
  if (hasLastNodeErrorsSetter()) app.lastNodeErrors = null;
  redraw();
}

/**
 * Mark every node named in `nodeErrors` and return the flat error list with each node's title
 * ({nodeId, classType, message, details, inputName, title, found}).
 */
export function showNodeErrors(nodeErrors) {
  clearNodeErrors();
  const entries = listNodeErrors(nodeErrors);
  const byNode = new Map();
  for (const entry of entries) {
    const node = findNode(entry.nodeId);
    entry.found = Boolean(node);
    entry.title = node?.title || entry.classType;
    if (!node) continue;
    let mark = byNode.get(node);
    if (!mark) {
      mark = { node, hadErrors: Boolean(node.has_errors), slots: [] };
      byNode.set(node, mark);
      setHasErrors(node, true);
    }
    if (entry.inputName && node.inputs) {
      const slot = node.inputs.find((input) => input.name === entry.inputName);
      if (slot) {
        setSlotErrors(node, slot, true);
        mark.slots.push(slot);
      }
    }
  }
  marked = [...byNode.values()];
  if (hasLastNodeErrorsSetter()) app.lastNodeErrors = nodeErrors;
  redraw();
  return entries;
}

/** Select a node and bring it into view (used when the user clicks an error line). */
export function revealNode(nodeId) {
  const node = findNode(nodeId);
  if (!node || !app.canvas) return;
  app.canvas.selectNode?.(node);
  app.canvas.centerOnNode?.(node);
  redraw();
}
