"""The sidebar's stream cards in a real browser (Debian chromium via Playwright, the page set-up of
tests/test_ui_browser.py): each card shows the output URL and a player command for the watch route, the
cards keep their order by start time, Restart keeps id, URLs and graph and frames flow again, Dismiss
removes a finished card (and the server forgets the stream)."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
import test_ui_browser as page_setup
from test_ui_browser import SIZE, UI_TIMEOUT_MS, read_output_frames, unique_id

ui = page_setup.ui  # the module-scoped browser page on the session's ComfyUI (a page of our own)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]


def card(stream_id: str) -> str:
    return f'.trickle-stream[data-stream-id="{stream_id}"]'


def card_order(ui) -> list[str]:
    return ui.page.eval_on_selector_all(".trickle-stream", "cards => cards.map(c => c.dataset.streamId)")


def assert_inverted_pictures(frames: list) -> None:
    assert len(frames) >= 5
    assert {(frame.width, frame.height) for frame in frames} == {(SIZE, SIZE)}
    contrast = max(int(frame.rgb.max()) - int(frame.rgb.min()) for frame in frames)
    assert contrast > 100  # a picture, not a flat fill
    assert len({np.asarray(frame.rgb).tobytes() for frame in frames}) > 1  # moving


def test_cards_show_output_and_watch_command_restart_and_dismiss(ui):
    first, second = unique_id("card-a"), unique_id("card-b")
    source = ui.start_rest_stream(first)
    ui.wait_card_state(first, "running")
    ui.start_rest_stream(second)
    ui.wait_card_state(second, "running")
    # newest start first
    order = [i for i in card_order(ui) if i in (first, second)]
    assert order == [second, first]

    # the output URL and the watch command, and the command's URL plays the output
    assert ui.page.inner_text(f"{card(first)} .trickle-output-url") == source["publish_url"]
    watch_url = f"{ui.server.base_url}/api/stream/{first}/watch"
    assert ui.page.inner_text(f"{card(first)} .trickle-watch-command") == f"ffplay '{watch_url}'"
    played = subprocess.run(["ffmpeg", "-v", "error", "-t", "2", "-i", watch_url, "-f", "null", "-"],
                            capture_output=True, text=True, timeout=60)
    assert played.returncode == 0, played.stderr
    assert ui.page.locator(f"{card(first)} .trickle-dismiss").is_hidden()

    # Restart: same id, same URLs and graph, a new run whose frames flow again
    before = ui.status(first)[1]
    ui.page.click(f"{card(first)} .trickle-restart")
    deadline = time.monotonic() + 60
    while True:
        status, after = ui.status(first)
        if status == 200 and after["started_at"] > before["started_at"] and after["state"] == "running":
            break
        assert time.monotonic() < deadline, after
        ui.wait_ms(200)
    assert after["config"] == before["config"]
    ui.wait_card_state(first, "running")
    assert ui.page.inner_text(f"{card(first)} .trickle-output-url") == source["publish_url"]
    frames = read_output_frames(after["config"]["publish_url"], want=8)
    assert_inverted_pictures(frames)
    assert ui.status(first)[1]["counters"]["frames_out"] > 0
    # the restarted stream started last, so it now leads
    assert [i for i in card_order(ui) if i in (first, second)] == [first, second]

    # Stop: the card stays in its place; Dismiss removes it and the server forgets the stream
    ui.page.click(f"{card(second)} .trickle-stop")
    ui.wait_card_state(second, "stopped", timeout_ms=15_000)
    assert [i for i in card_order(ui) if i in (first, second)] == [first, second]
    assert ui.page.locator(f"{card(second)} .trickle-restart").is_visible()
    ui.page.click(f"{card(second)} .trickle-dismiss")
    ui.page.wait_for_selector(card(second), state="detached", timeout=UI_TIMEOUT_MS)
    assert ui.status(second)[0] == 404
    assert ui.page.locator(card(first)).is_visible()  # the other card is untouched


def test_a_card_says_the_workflow_warms_up_and_then_why_the_stream_ended(ui):
    stream_id = unique_id("card-warm")
    never_in_time = {
        "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
        "2": {"class_type": "TrickleTestSlow", "inputs": {"image": ["1", 0], "seconds": 6.0}},
        "3": {"class_type": "TrickleOutput", "inputs": {"images": ["2", 0], "stream_id": ""}},
    }
    ui.start_rest_stream(stream_id, never_in_time, first_frame_timeout_s=4)
    ui.page.wait_for_function(
        "(state) => /^warming up: \\d+ s of 4 s$/.test(document.querySelector(state)?.textContent || '')",
        arg=f"{card(stream_id)} .trickle-state", timeout=UI_TIMEOUT_MS,
    )
    ui.wait_card_state(stream_id, "error", timeout_ms=UI_TIMEOUT_MS)
    assert ui.page.inner_text(f"{card(stream_id)} .trickle-state") == "error"
    error = ui.page.inner_text(f"{card(stream_id)} .trickle-stream-error")
    assert "put out no frame within 4 s" in error, error
