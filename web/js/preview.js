// Live preview inside every TrickleOutput node: a DOM widget (serialize:false, so it never enters the
// workflow or the prompt) showing the newest output frame of the stream running this node's graph (one
// started from it: the last one this page started, else the newest), never another graph's stream;
// refreshed at the capped rate of the Trickle > Preview settings.
import { app } from "../../../scripts/app.js";
import { ensureStyles, el } from "./common/dom.js";
import { startStreamFeed } from "./common/feed.js";
import { graphKeyOfNode } from "./common/graph_key.js";
import { createPreviewView } from "./common/preview.js";
import { streamStore } from "./common/store.js";

const NODE_CLASS = "TrickleOutput";
const WIDGET_NAME = "trickle_preview";
const MIN_HEIGHT = 160;

function addPreviewWidget(node) {
  ensureStyles();
  const view = createPreviewView({ emptyText: "No live stream" });
  const container = el("div", { class: "trickle-node-preview", "data-node-id": String(node.id) }, [view.element]);
  const widget = node.addDOMWidget(WIDGET_NAME, "TRICKLE_PREVIEW", container, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: () => MIN_HEIGHT,
  });
  // Also keep it out of widgets_values, so saved workflows stay as they were.
  widget.serialize = false;

  const follow = () => view.show(streamStore.previewTarget(graphKeyOfNode(node)));
  const unsubscribe = streamStore.subscribe(follow);
  follow();

  // Instance callback (not the prototype): when the node leaves the graph its preview stops polling.
  const previousOnRemoved = node.onRemoved;
  node.onRemoved = function onRemoved(...args) {
    unsubscribe();
    view.destroy();
    return previousOnRemoved?.apply(this, args);
  };
}

app.registerExtension({
  name: "Trickle.Preview",
  setup() {
    startStreamFeed();
  },
  nodeCreated(node) {
    if (node?.comfyClass !== NODE_CLASS) return;
    addPreviewWidget(node);
  },
});
