// TrickleInput / TrickleOutput as an artist sees them: the inputs the stream fills in (`stream_id`,
// `frame_ticket`: flagged `hidden` in the node definition, see nodes/live_io.py) get neither a widget
// nor an input slot on the canvas. They stay widgets underneath, so saved graphs and prompts keep them.
// (This frontend copies the definition's `hidden` into widget.options only, which LiteGraph's canvas
// ignores, and still adds a slot for `socketless` inputs; hence this extension.)
import { app } from "../../../scripts/app.js";

const LIVE_NODES = new Set(["TrickleInput", "TrickleOutput", "TrickleTextOutput"]);

function hiddenInputNames(nodeData) {
  const names = new Set();
  for (const group of [nodeData?.input?.required, nodeData?.input?.optional]) {
    for (const [name, spec] of Object.entries(group ?? {})) {
      if (Array.isArray(spec) && spec[1]?.hidden) names.add(name);
    }
  }
  return names;
}

function hidePlumbing(node, names) {
  for (const widget of node.widgets ?? []) {
    if (!names.has(widget.name)) continue;
    widget.hidden = true;
    widget.computeSize = () => [0, -4]; // no room taken either
  }
  for (let index = (node.inputs?.length ?? 0) - 1; index >= 0; index -= 1) {
    const slot = node.inputs[index];
    if (names.has(slot.name) && slot.link == null) node.removeInput(index);
  }
  node.setSize?.(node.computeSize());
}

function chain(prototype, method, after) {
  const previous = prototype[method];
  prototype[method] = function chained(...args) {
    const result = previous?.apply(this, args);
    after(this);
    return result;
  };
}

app.registerExtension({
  name: "Trickle.LiveNodes",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (!LIVE_NODES.has(nodeData?.name)) return;
    const names = hiddenInputNames(nodeData);
    if (!names.size) return;
    chain(nodeType.prototype, "onNodeCreated", (node) => hidePlumbing(node, names));
    // a saved graph restores its slots after creation
    chain(nodeType.prototype, "onConfigure", (node) => hidePlumbing(node, names));
  },
});
