// ComfyUI's Run button (and Ctrl+Enter) on a graph that a live stream follows: instead of queueing the
// graph as a one-off prompt (which a graph with Trickle nodes is not meant for, and which would end in
// an error dialog), send it to the stream now, as an immediate live update.
//
// The hook: every way the frontend runs the canvas (the Run button's Comfy.QueuePrompt command, the
// keybinding, "Queue (Front)") ends in `app.queuePrompt(number, batchCount, queueNodeIds)`
// (ComfyUI_frontend src/scripts/app.ts, src/composables/useCoreCommands.ts). Wrapping that one method on
// the app instance is the pattern extensions use for it; graphs no stream follows go to the original.
import { app } from "../../../scripts/app.js";
import { toast } from "./common/http.js";
import { LIVE_STATES } from "./common/live_updater.js";
import { linksOnCanvas } from "./livecontrol.js";

/** Push the canvas to every stream that follows it; false when none does. */
export async function runOnLinkedStreams() {
  const linked = linksOnCanvas();
  if (!linked.length) return false;
  await Promise.all(linked.map(({ updater }) => updater.flush({ force: true })));
  const applied = linked.filter(({ updater }) => updater.state !== LIVE_STATES.rejected);
  if (applied.length) {
    toast("info", "Trickle: sent to the live stream", `Updated ${applied.map((l) => l.streamId).join(", ")}`);
  }
  return true; // a rejection already marked the nodes and said so (livecontrol.js)
}

app.registerExtension({
  name: "Trickle.RunLive",
  setup() {
    const queuePrompt = app.queuePrompt;
    app.queuePrompt = async function queuePromptOrUpdateStream(...args) {
      if (await runOnLinkedStreams()) return true;
      return queuePrompt.apply(this, args);
    };
  },
});
