// Which graph a stream runs: the root graph's id (LiteGraph's `graph.id`, saved with the workflow, so
// a reload or a reopened workflow keeps it), else the open workflow's path (graphs loaded from API JSON
// all carry the nil UUID). Node previews show only
// streams started from their own graph (see streamStore.previewTarget).
import { app } from "../../../../scripts/app.js";

function workflowPath() {
  const workflow = app.extensionManager?.workflow?.activeWorkflow;
  return workflow?.path ?? workflow?.key ?? "";
}

const NIL_UUID = /^[0-]*$/;

function keyOf(graph) {
  const id = String((graph?.rootGraph ?? graph)?.id ?? "");
  return NIL_UUID.test(id) ? `workflow:${workflowPath()}` : `graph:${id}`;
}

/** The graph on the canvas, the one "Go live" streams. */
export function currentGraphKey() {
  return keyOf(app.graph);
}

/** The graph `node` belongs to. */
export function graphKeyOfNode(node) {
  return keyOf(node?.graph ?? app.graph);
}
