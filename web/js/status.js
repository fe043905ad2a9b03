// Status at a glance: a small pill showing how many streams are live and whether any is in error.
// Driven by the pushed `trickle.status` events through streamStore; clicking it opens the Trickle tab.
import { app } from "../../../scripts/app.js";
import { ensureStyles, el } from "./common/dom.js";
import { startStreamFeed } from "./common/feed.js";
import { describeSummary, summarizeStreams } from "./common/format.js";
import { SIDEBAR_TAB_ID } from "./common/settings.js";
import { streamStore } from "./common/store.js";

function openSidebarTab() {
  // The frontend registers a toggle command per sidebar tab; it is optional, so a failure is ignored.
  try {
    app.extensionManager?.command?.execute?.(`Workspace.ToggleSidebarTab.${SIDEBAR_TAB_ID}`)?.catch?.(() => {});
  } catch {
    // an older or newer frontend without that command: the tab is still one click away
  }
}

app.registerExtension({
  name: "Trickle.Status",
  setup() {
    ensureStyles();
    const dot = el("span", { class: "trickle-indicator-dot" });
    const label = el("span", { class: "trickle-indicator-label" }, "Trickle: 0 live");
    const indicator = el(
      "div",
      { class: "trickle-indicator", id: "trickle-indicator", role: "status", "data-tone": "idle",
        title: "Trickle live streams", onclick: openSidebarTab },
      [dot, label],
    );
    document.body.append(indicator);

    const update = () => {
      const summary = summarizeStreams(streamStore.list());
      const { text, tone } = describeSummary(summary);
      label.textContent = `Trickle: ${text}`;
      indicator.dataset.tone = tone;
      indicator.dataset.live = String(summary.live);
      indicator.dataset.errors = String(summary.errored);
    };
    streamStore.subscribe(update);
    update();
    startStreamFeed();
  },
});
