"""The live nodes as an artist sees them, in a real browser (the page set-up of tests/test_ui_browser.py):
``stream_id`` and ``frame_ticket`` are plumbing, so neither shows as a widget nor as an input slot (the
stream still fills them in); a TrickleOutput's preview shows only the stream running its own graph,
never a stream started elsewhere or from another graph."""

from __future__ import annotations

import test_ui_browser as page_setup
from test_ui_browser import INVERT_WORKFLOW, SIZE, UI_TIMEOUT_MS, unique_id

ui = page_setup.ui  # the module-scoped browser page on the session's ComfyUI (a page of our own)
pytestmark = page_setup.pytestmark

PLUMBING = ("stream_id", "frame_ticket")
NODE_VIEW = """(classType) => {
    const node = window.app.graph.nodes.find((n) => n.comfyClass === classType);
    return {
        workflow: window.app.extensionManager.workflow.activeWorkflow?.path ?? null,
        slots: (node.inputs || []).map((slot) => slot.name),
        widgets: Object.fromEntries((node.widgets || []).filter((w) => w.name !== 'trickle_preview')
            .map((w) => [w.name, node.isWidgetVisible(w)])),
    };
}"""
NODE_PREVIEW = ".trickle-node-preview .trickle-preview"


def node_preview_stream(ui) -> str | None:
    return ui.page.get_attribute(NODE_PREVIEW, "data-stream-id")


def test_plumbing_inputs_are_hidden_from_artists(ui):
    ui.load_workflow(INVERT_WORKFLOW, "plumbing.json")
    live_input = ui.page.evaluate(NODE_VIEW, "TrickleInput")
    live_output = ui.page.evaluate(NODE_VIEW, "TrickleOutput")
    for view in (live_input, live_output):
        for name in PLUMBING:
            assert view["widgets"].get(name) is False, view  # declared (the stream fills it) but not drawn
            assert name not in view["slots"], view  # nothing to wire either
    assert live_input["widgets"]["timeout_seconds"] is True  # an artist's setting stays visible
    assert "images" in live_output["slots"]


def test_node_preview_shows_only_the_stream_of_its_own_graph(ui):
    ui.load_workflow(INVERT_WORKFLOW, "graph-a.json")
    graph_a = ui.page.evaluate(NODE_VIEW, "TrickleOutput")["workflow"]
    mine = unique_id("mine")
    ui.started_streams.add(mine)
    ui.page.fill("#trickle-stream-id", mine)
    ui.page.fill("#trickle-width", str(SIZE))
    ui.page.fill("#trickle-height", str(SIZE))
    ui.page.click("#trickle-test-source")
    ui.wait_card_state(mine, "running")
    ui.page.wait_for_selector(f'{NODE_PREVIEW}[data-stream-id="{mine}"]', timeout=UI_TIMEOUT_MS)

    # a newer stream started elsewhere (over REST) does not take over this graph's preview
    elsewhere = unique_id("elsewhere")
    ui.start_rest_stream(elsewhere)
    ui.wait_card_state(elsewhere, "running")
    ui.page.wait_for_function(
        "(id) => Number(document.querySelector(`.trickle-stream[data-stream-id=\"${id}\"] "
        "[data-metric=frames_out]`)?.textContent) > 0", arg=elsewhere, timeout=UI_TIMEOUT_MS,
    )
    assert node_preview_stream(ui) == mine

    # another graph shows none of them: its own stream is not running
    ui.load_workflow(INVERT_WORKFLOW, "graph-b.json")
    assert ui.page.evaluate(NODE_VIEW, "TrickleOutput")["workflow"] not in (graph_a, None)  # another tab
    ui.page.wait_for_selector(NODE_PREVIEW, timeout=UI_TIMEOUT_MS)
    ui.wait_ms(1000)  # give a wrong binding the chance to show (the store notifies about every second)
    assert node_preview_stream(ui) is None
    assert ui.page.inner_text(".trickle-node-preview").strip().startswith("No live stream")

    for stream_id in (mine, elsewhere):
        ui.server.request("POST", f"/stream/{stream_id}/stop")
