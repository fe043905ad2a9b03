"""Live control from the canvas, in a real browser (Debian chromium via Playwright, as
tests/test_ui_browser.py) against the session's real ComfyUI, with the page's own local test source.

A stream goes live from a graph: Trickle Input -> Invert -> ImageBlend(with an EmptyImage) -> Trickle Output,
blend_factor 0, so the output is the inverted picture. Then, with no Stop in between:
- a widget edit (blend_factor 0 -> 1) turns the decoded output frames into the EmptyImage's flat black,
  and the card says "applied";
- an invalid edit (a blend_mode the node does not know) is rejected: the card says so, the node gets
  ComfyUI's error mark, and frames keep flowing with the previous generation (still black);
- ComfyUI's Run button on the linked graph (colour -> white) updates the stream: no prompt is queued,
  no error dialog, the frames turn white;
- Restart keeps the stream id and its URLs, and the restarted stream outputs the graph's current picture.
Pixels are read back from the output channel with PyAV (TrickleSubscriber + StreamDecoder).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Callable
from typing import Any

import pytest
from test_ui_browser import (
    SCREENSHOTS,
    SIZE,
    UI_TIMEOUT_MS,
    is_from_our_extension,
    ui,  # noqa: F401 - the module's browser page (a pytest fixture)
    unique_id,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

BLEND_NODE = "5"
COLOR_NODE = "4"
LIVE_WORKFLOW = {
    "1": {"class_type": "TrickleInput", "inputs": {}, "_meta": {"title": "Trickle Input (Live)"}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}, "_meta": {"title": "Invert Image"}},
    COLOR_NODE: {"class_type": "EmptyImage", "_meta": {"title": "Flat colour"},
                 "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1, "color": 0}},
    BLEND_NODE: {"class_type": "ImageBlend", "_meta": {"title": "Image Blend"},
                 "inputs": {"image1": ["2", 0], "image2": [COLOR_NODE, 0], "blend_factor": 0.0,
                            "blend_mode": "normal"}},
    "3": {"class_type": "TrickleOutput", "inputs": {"images": [BLEND_NODE, 0]},
          "_meta": {"title": "Trickle Output (Live)"}},
}  # fmt: skip
# ComfyUI's Run button: frontend 1.32.9 puts the test id on a wrapper of the button, 1.49.6 and on on the
# button itself (its queuePrompt handler runs the Comfy.QueuePrompt command -> app.queuePrompt).
RUN_BUTTON = 'button[data-testid="queue-button"], [data-testid="queue-button"] button'
# Frames counted, not timed: the switch must show within this many decoded frames.
FRAMES_LIMIT = 240


def is_picture(frame: Any) -> bool:
    return int(frame.rgb.max()) - int(frame.rgb.min()) > 100


def is_flat(level: int) -> Callable[[Any], bool]:
    def check(frame: Any) -> bool:
        rgb = frame.rgb.astype(int)
        return abs(float(rgb.mean()) - level) < 20 and int(rgb.max()) - int(rgb.min()) < 60

    return check


def read_frames_until(url: str, predicate: Callable[[Any], bool], in_a_row: int = 5) -> list[Any]:
    """Decode the output channel (from its current segment) until ``in_a_row`` consecutive frames match
    ``predicate`` or FRAMES_LIMIT frames came; returns every decoded frame."""
    from comfy_trickle.media.decoder import StreamDecoder
    from comfy_trickle.trickle.subscriber import TrickleSubscriber

    async def collect() -> list[Any]:
        frames: list[Any] = []
        decoder = StreamDecoder(frames.append, max_fps=None)
        decoder.start()
        subscriber = TrickleSubscriber(url)

        def done() -> bool:
            tail = frames[-in_a_row:]
            return len(frames) >= FRAMES_LIMIT or (len(tail) == in_a_row and all(map(predicate, tail)))

        async def read() -> None:
            async for segment in subscriber:
                while chunk := await segment.read_chunk():
                    decoder.feed(chunk)
                    if done():
                        return

        try:
            await asyncio.wait_for(read(), 90)
        finally:
            await subscriber.close()
            decoder.stop()
            decoder.join(5)
        return frames

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, collect()).result(120)


def assert_output_becomes(url: str, predicate: Callable[[Any], bool], what: str) -> list[Any]:
    frames = read_frames_until(url, predicate)
    assert len(frames) >= 5 and all(map(predicate, frames[-5:])), (
        f"the output did not become {what} within {len(frames)} frames"
    )
    return frames


def set_widget(helper: Any, node_id: str, name: str, value: Any) -> None:
    """Change a widget as a click would, then release the mouse on the page: the frontend's change
    tracker looks at the graph on every mouse-up, as it does after a real widget edit."""
    helper.page.evaluate(
        """([id, name, value]) => {
            const node = app.graph.getNodeById(Number(id));
            const widget = node.widgets.find((w) => w.name === name);
            widget.value = value;
            widget.callback?.(value, app.canvas, node);
        }""",
        [node_id, name, value],
    )
    helper.page.click("#trickle-panel h2")


def card(stream_id: str) -> str:
    return f'.trickle-stream[data-stream-id="{stream_id}"]'


def wait_live_state(helper: Any, stream_id: str, state: str) -> None:
    helper.page.wait_for_selector(
        f'{card(stream_id)} .trickle-live-state[data-live-state="{state}"]', timeout=UI_TIMEOUT_MS
    )


def is_update_of(stream_id: str) -> Callable[[Any], bool]:
    return lambda response: response.url.endswith(f"/stream/{stream_id}/update")


@pytest.fixture(scope="module")
def live(ui):  # noqa: F811 - the fixture imported above
    """A stream started from the page (Local test source) from LIVE_WORKFLOW; yields its id and status."""
    stream_id = unique_id("live")
    ui.started_streams.add(stream_id)
    ui.load_workflow(LIVE_WORKFLOW, "live-control.json")
    ui.page.fill("#trickle-stream-id", stream_id)
    ui.page.fill("#trickle-width", str(SIZE))
    ui.page.fill("#trickle-height", str(SIZE))
    ui.page.click("#trickle-test-source")
    ui.wait_card_state(stream_id, "running")
    status, body = ui.status(stream_id)
    assert status == 200, body
    return {"id": stream_id, "config": body["config"]}


def test_a_widget_edit_changes_the_output_pixels_without_a_stop(ui, live):  # noqa: F811
    stream_id, url = live["id"], live["config"]["publish_url"]
    assert_output_becomes(url, is_picture, "the inverted picture")
    with ui.page.expect_response(is_update_of(stream_id), timeout=UI_TIMEOUT_MS) as answer:
        set_widget(ui, BLEND_NODE, "blend_factor", 1.0)
    assert answer.value.status == 200, answer.value.text()
    sent = json.loads(answer.value.request.post_data)["params"]["prompt"]
    assert sent[BLEND_NODE]["inputs"]["blend_factor"] == 1.0
    wait_live_state(ui, stream_id, "applied")
    assert_output_becomes(url, is_flat(0), "flat black (the blend's EmptyImage)")
    status = ui.status(stream_id)[1]
    assert status["state"] == "running"
    assert status["generation"] > 1 or status["generation"] >= answer.value.json()["generation"]
    assert "Live: " + stream_id in ui.page.inner_text("#trickle-live-link")


def test_an_invalid_edit_is_rejected_marks_the_node_and_the_stream_keeps_running(ui, live):  # noqa: F811
    stream_id, url = live["id"], live["config"]["publish_url"]
    generation = ui.status(stream_id)[1]["generation"]
    with ui.page.expect_response(is_update_of(stream_id), timeout=UI_TIMEOUT_MS) as answer:
        set_widget(ui, BLEND_NODE, "blend_mode", "no-such-mode")
    assert answer.value.status == 400
    assert BLEND_NODE in answer.value.json()["node_errors"]
    wait_live_state(ui, stream_id, "rejected")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ui.page.screenshot(path=str(SCREENSHOTS / "live-control-rejected.png"))
    marked = ui.page.evaluate("() => app.graph.nodes.filter((n) => n.has_errors).map((n) => String(n.id))")
    assert marked == [BLEND_NODE]
    # The stream runs on with what it had: still running, same generation, frames still flat black.
    frames_before = ui.status(stream_id)[1]["counters"]["frames_out"]
    assert_output_becomes(url, is_flat(0), "flat black (the previous generation)")
    for _attempt in range(300):  # frames keep going out (bounded; the counters are pushed in steps)
        status = ui.status(stream_id)[1]
        if status["counters"]["frames_out"] > frames_before + 15:
            break
        ui.wait_ms(200)
    assert status["state"] == "running"
    assert status["generation"] == generation
    assert status["counters"]["frames_out"] > frames_before + 15
    # Fixing the widget applies again and clears the mark.
    with ui.page.expect_response(is_update_of(stream_id), timeout=UI_TIMEOUT_MS) as fixed:
        set_widget(ui, BLEND_NODE, "blend_mode", "normal")
    assert fixed.value.status == 200
    wait_live_state(ui, stream_id, "applied")
    assert ui.page.evaluate("() => app.graph.nodes.filter((n) => n.has_errors).length") == 0


def test_the_run_button_on_the_linked_graph_updates_the_stream(ui, live):  # noqa: F811
    stream_id, url = live["id"], live["config"]["publish_url"]
    ui.page.evaluate(
        """([id]) => { const node = app.graph.getNodeById(Number(id));
                       node.widgets.find((w) => w.name === 'color').value = 0xffffff; }""",
        [COLOR_NODE],
    )
    requests_before = len(ui.requests)
    run = ui.page.locator(RUN_BUTTON).first
    with ui.page.expect_response(is_update_of(stream_id), timeout=UI_TIMEOUT_MS) as answer:
        run.click()
    assert answer.value.status == 200
    sent = json.loads(answer.value.request.post_data)["params"]["prompt"]
    assert sent[COLOR_NODE]["inputs"]["color"] == 0xFFFFFF
    wait_live_state(ui, stream_id, "applied")
    assert_output_becomes(url, is_flat(255), "flat white")
    queued = [r for r in ui.requests[requests_before:] if r.startswith("POST ") and r.endswith("/prompt")]
    assert queued == [], "Run queued a prompt instead of updating the stream"
    assert ui.page.locator(".p-dialog:visible").count() == 0, "an error dialog is open"
    assert ui.status(stream_id)[1]["state"] == "running"


def test_restart_keeps_the_id_and_the_urls(ui, live):  # noqa: F811
    stream_id = live["id"]
    before = ui.status(stream_id)[1]
    assert before["generation"] > 1
    ui.page.click(f"{card(stream_id)} .trickle-restart")
    # Until the new session runs and publishes (a new session starts at generation 1; the stop closed the
    # output channel and the new session's first segment opens it again under the same URL).
    for _attempt in range(300):
        after = ui.status(stream_id)[1]
        if after["state"] == "running" and after["generation"] == 1 and after["counters"]["frames_out"] > 0:
            break
        ui.wait_ms(200)
    ui.wait_card_state(stream_id, "running")
    # A new session under the same id: its generations and uptime start over.
    assert after["state"] == "running"
    assert after["generation"] == 1
    assert after["counters"]["uptime_s"] < before["counters"]["uptime_s"]
    for key in ("subscribe_url", "publish_url", "width", "height"):
        assert after["config"][key] == before["config"][key], key
    url = after["config"]["publish_url"]
    assert_output_becomes(url, is_flat(255), "flat white (the graph's current workflow)")
    # Still linked: the restarted stream follows the graph's edits.
    with ui.page.expect_response(is_update_of(stream_id), timeout=UI_TIMEOUT_MS) as answer:
        set_widget(ui, BLEND_NODE, "blend_factor", 0.0)
    assert answer.value.status == 200
    assert_output_becomes(url, is_picture, "the inverted picture again")


def test_no_console_errors_from_live_control(ui):  # noqa: F811
    """Chrome logs the deliberate 400 of the rejected edit by itself; nothing else of ours may error."""
    ui.wait_ms(500)

    def deliberate(error: dict[str, str]) -> bool:
        return error["url"].endswith("/update") and "400" in error["text"]

    ours = [e for e in ui.console_errors if is_from_our_extension(e) and not deliberate(e)]
    assert ours == [], json.dumps(ui.console_errors, indent=1)
