"""``TrickleInput.execute`` / ``TrickleOutput.execute`` called directly, the way ComfyUI's executor calls
them, against a real ``FrameBridge`` registered for a stream id and real tensors.

The nodes need ComfyUI's ``comfy_api`` (importable from ``COMFYUI_DIR``, set by ``scripts/env.sh``); the
rest of ComfyUI (server, executor) is not started. What a workflow author would notice is checked: the
IMAGE a frame becomes, the width/height outputs, the pts the output frame keeps, the messages when no
stream is bound, and that the nodes re-run for every frame.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import threading
import time
import types
import uuid
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from comfy_trickle.streams.bridge import PROCESS_BRIDGES, FrameBridge
from comfy_trickle.streams.errors import FrameTimeout, StreamAccessDenied, StreamNotBound
from comfy_trickle.streams.handoff import InputFrame

WIDTH, HEIGHT = 64, 48  # not square, so width and height cannot be mixed up
TIME_BASE = Fraction(1, 90_000)


@pytest.fixture(scope="module")
def live_io() -> ModuleType:
    comfyui_dir = os.environ.get("COMFYUI_DIR", "")
    assert (Path(comfyui_dir) / "comfy_api").is_dir(), f"no ComfyUI at COMFYUI_DIR={comfyui_dir!r}"
    if comfyui_dir not in sys.path:
        sys.path.append(comfyui_dir)  # appended: ComfyUI's top-level names never shadow ours
    return importlib.import_module("comfy_trickle.nodes.live_io")


class Delivered:
    """The session side of a bridge: what ``TrickleOutput`` handed over, in order."""

    def __init__(self) -> None:
        self.items: list[tuple[int, InputFrame, Any]] = []

    def __call__(self, ticket: int, frame: InputFrame, images: Any) -> None:
        self.items.append((ticket, frame, images))


@pytest.fixture
def running_prompt(live_io, monkeypatch) -> dict[str, str | None]:
    """What ``host.running_prompt`` reports while a node runs: the secret its prompt carries (set
    ``["secret"]``; None: a prompt queued by hand)."""
    current: dict[str, str | None] = {"secret": None}
    monkeypatch.setattr(live_io, "running_prompt_secret", lambda: current["secret"])
    return current


@pytest.fixture
def stream() -> Any:
    delivered = Delivered()
    bridge = FrameBridge(f"live-io-{uuid.uuid4().hex[:8]}", delivered)
    PROCESS_BRIDGES.register(bridge)
    try:
        yield bridge, delivered
    finally:
        PROCESS_BRIDGES.unregister(bridge)
        bridge.close()


def pattern(seed: int) -> np.ndarray:
    """A uint8 RGB frame whose every pixel differs by position and channel."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([(x * 4 + seed) % 256, (y * 5 + seed) % 256, (x + y + seed * 3) % 256], axis=-1)
    return rgb.astype(np.uint8)


def input_frame(index: int, pts: int) -> InputFrame:
    return InputFrame(
        index=index,
        picture=pattern(index),
        pts=pts,
        time_base=TIME_BASE,
        media_time=float(pts * TIME_BASE),
        arrival=time.monotonic(),
    )


def test_input_returns_its_tickets_frame_as_an_image_with_width_and_height(
    live_io, stream, running_prompt
) -> None:
    bridge, _ = stream
    first, second = input_frame(0, 3003), input_frame(1, 6006)
    first_ticket, second_ticket = bridge.open_ticket(first), bridge.open_ticket(second)

    # the second frame is the newest, yet each ticket gets its own frame
    for ticket, frame in ((first_ticket, first), (second_ticket, second)):
        running_prompt["secret"] = bridge.ticket_secret(ticket)  # the stream's own prompt for the ticket
        output = live_io.TrickleInput.execute(stream_id=bridge.stream_id, frame_ticket=ticket)
        image, width, height = output.args
        assert isinstance(image, torch.Tensor)
        assert tuple(image.shape) == (1, HEIGHT, WIDTH, 3) and image.dtype == torch.float32
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        expected = torch.from_numpy(frame.image.astype(np.float32) / 255.0)
        assert torch.allclose(image[0], expected, atol=1e-6)
        assert (width, height) == (WIDTH, HEIGHT)


def test_input_queued_from_the_ui_gets_the_newest_frame(live_io, stream) -> None:
    bridge, _ = stream
    bridge.note_latest(input_frame(7, 7 * 3003))
    output = live_io.TrickleInput.execute(stream_id=bridge.stream_id)  # no ticket: a UI prompt
    expected = torch.from_numpy(pattern(7).astype(np.float32) / 255.0)
    assert torch.allclose(output.args[0][0], expected, atol=1e-6)


def test_input_without_a_frame_fails_after_its_timeout_saying_so(live_io, stream) -> None:
    bridge, _ = stream
    with pytest.raises(FrameTimeout, match=f"No frame from stream '{bridge.stream_id}' within 0.1 s"):
        live_io.TrickleInput.execute(stream_id=bridge.stream_id, timeout_seconds=0.1)


def test_input_waiting_for_a_frame_fails_at_once_when_the_stream_stops(live_io, stream) -> None:
    bridge, _ = stream
    errors: list[BaseException] = []

    def run_node() -> None:  # ComfyUI's worker thread, waiting for the stream's next frame
        try:
            live_io.TrickleInput.execute(stream_id=bridge.stream_id, timeout_seconds=60.0)
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            errors.append(err)

    worker = threading.Thread(target=run_node)
    worker.start()
    bridge.close()
    worker.join(30)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], StreamNotBound), errors
    assert "stopped" in str(errors[0])


def test_output_hands_the_images_over_with_their_frames_pts(live_io, stream, running_prompt) -> None:
    bridge, delivered = stream
    frame = input_frame(3, 9009)
    ticket = bridge.open_ticket(frame)
    running_prompt["secret"] = bridge.ticket_secret(ticket)
    image = live_io.TrickleInput.execute(stream_id=bridge.stream_id, frame_ticket=ticket).args[0]
    processed = 1.0 - image  # what a workflow might do between the two nodes

    output = live_io.TrickleOutput.execute(images=processed, stream_id=bridge.stream_id, frame_ticket=ticket)

    ((got_ticket, got_frame, got_images),) = delivered.items
    assert got_ticket == ticket
    assert got_frame.pts == 9009 and got_frame.time_base == TIME_BASE and got_frame.index == 3
    assert got_images is processed
    assert output.args == () and output.ui.as_dict() == {"text": (f"sent 1 frame(s) to {bridge.stream_id}",)}


def test_output_queued_from_the_ui_reports_and_sends_nothing(live_io, stream) -> None:
    bridge, delivered = stream
    bridge.note_latest(input_frame(0, 0))
    images = torch.zeros((2, HEIGHT, WIDTH, 3))
    output = live_io.TrickleOutput.execute(images=images, stream_id=bridge.stream_id)
    assert delivered.items == []
    assert "not sent: only prompts queued by stream" in output.ui.as_dict()["text"][0]


@pytest.mark.parametrize("node", ["TrickleInput", "TrickleOutput"])
def test_nodes_without_a_running_stream_fail_with_a_clear_message(live_io, node) -> None:
    execute = getattr(live_io, node).execute
    arguments = {"images": torch.zeros((1, HEIGHT, WIDTH, 3))} if node == "TrickleOutput" else {}
    with pytest.raises(StreamNotBound, match="has no stream_id. Start a stream"):
        execute(stream_id="", **arguments)
    with pytest.raises(StreamNotBound, match="Stream 'nobody-streams-this' is not running. Start it"):
        execute(stream_id="nobody-streams-this", **arguments)


@pytest.mark.parametrize("node", ["TrickleInput", "TrickleOutput"])
def test_fingerprint_differs_every_call_so_the_node_runs_for_every_frame(live_io, node) -> None:
    fingerprint = getattr(live_io, node).fingerprint_inputs
    first, second = fingerprint(stream_id="x"), fingerprint(stream_id="x")
    # ComfyUI compares cache keys with ==, and containers compare identical objects as equal: a shared
    # math.nan would make two frames' keys equal. A fresh NaN (or a counter) never does.
    assert first is not math.nan and second is not math.nan
    assert (first,) != (second,)


def test_a_prompt_queued_by_hand_with_a_copied_ticket_gets_nothing_and_injects_nothing(
    live_io, stream, running_prompt
) -> None:
    bridge, delivered = stream
    ticket = bridge.open_ticket(input_frame(4, 4 * 3003))
    images = torch.zeros((1, HEIGHT, WIDTH, 3))
    running_prompt["secret"] = None  # what POST /prompt can queue: no secret in the sensitive part
    with pytest.raises(StreamAccessDenied, match=f"not queued by stream '{bridge.stream_id}'"):
        live_io.TrickleInput.execute(stream_id=bridge.stream_id, frame_ticket=ticket)
    with pytest.raises(StreamAccessDenied, match=f"not queued by stream '{bridge.stream_id}'"):
        live_io.TrickleOutput.execute(images=images, stream_id=bridge.stream_id, frame_ticket=ticket)
    assert delivered.items == []


def test_a_prompt_queued_by_hand_cannot_write_to_a_streams_data_channel(
    live_io, stream, running_prompt, monkeypatch
) -> None:
    text_output = importlib.import_module("comfy_trickle.nodes.text_output")
    monkeypatch.setattr(text_output, "running_prompt_secret", lambda: running_prompt["secret"])
    bridge, _ = stream
    ticket = bridge.open_ticket(input_frame(6, 6 * 3003))
    running_prompt["secret"] = None  # queued by hand, with a ticket copied from GET /queue
    send = text_output.TrickleTextOutput.execute
    with pytest.raises(StreamAccessDenied, match=f"not queued by stream '{bridge.stream_id}'"):
        send(text="injected", stream_id=bridge.stream_id, frame_ticket=ticket)
    running_prompt["secret"] = bridge.ticket_secret(ticket)  # the stream's own prompt passes the check
    sent = send(text="caption", stream_id=bridge.stream_id, frame_ticket=ticket)
    assert "has no data channel" in sent.ui.as_dict()["text"][0]  # this stream has none: nothing published


def test_with_a_token_a_users_own_prompt_cannot_read_the_newest_frame(live_io, running_prompt) -> None:
    bridge = FrameBridge(f"live-io-{uuid.uuid4().hex[:8]}", Delivered(), newest_frame_reads=False)
    PROCESS_BRIDGES.register(bridge)
    try:
        bridge.note_latest(input_frame(5, 0))
        with pytest.raises(StreamAccessDenied, match="protected by COMFY_TRICKLE_TOKEN"):
            live_io.TrickleInput.execute(stream_id=bridge.stream_id)
    finally:
        PROCESS_BRIDGES.unregister(bridge)
        bridge.close()


def test_a_streams_own_prompt_finding_the_stream_stopped_ends_quietly(
    live_io, stream, running_prompt, monkeypatch
):
    """At Stop, prompts in flight are expected to find the stream gone: TrickleOutput just reports it,
    TrickleInput ends the prompt the way ComfyUI's Interrupt does (one log line, no traceback)."""

    class InterruptProcessingException(Exception):  # comfy.model_management's, as ComfyUI loads it
        pass

    monkeypatch.setitem(
        sys.modules,
        "comfy.model_management",
        types.SimpleNamespace(InterruptProcessingException=InterruptProcessingException),
    )
    bridge, delivered = stream
    withdrawn = bridge.open_ticket(input_frame(5, 0))
    running_prompt["secret"] = bridge.ticket_secret(withdrawn)
    bridge.close_ticket(withdrawn)  # the session gave up on that frame: its prompt ends at once
    with pytest.raises(InterruptProcessingException, match=f"stopped or dropped frame {withdrawn}"):
        live_io.TrickleInput.execute(stream_id=bridge.stream_id, frame_ticket=withdrawn, timeout_seconds=60.0)
    ticket = bridge.open_ticket(input_frame(6, 0))
    running_prompt["secret"] = bridge.ticket_secret(ticket)
    bridge.close()
    PROCESS_BRIDGES.unregister(bridge)
    with pytest.raises(InterruptProcessingException, match=f"stopped or dropped frame {ticket}"):
        live_io.TrickleInput.execute(stream_id=bridge.stream_id, frame_ticket=ticket)
    images = torch.zeros((1, HEIGHT, WIDTH, 3))
    output = live_io.TrickleOutput.execute(images=images, stream_id=bridge.stream_id, frame_ticket=ticket)
    assert output.ui.as_dict() == {"text": (f"not sent: stream {bridge.stream_id} stopped",)}
    assert delivered.items == []
    # a prompt queued by hand naming a stopped stream still fails with the readable message
    running_prompt["secret"] = None
    with pytest.raises(StreamNotBound, match="is not running"):
        live_io.TrickleInput.execute(stream_id=bridge.stream_id, frame_ticket=ticket)
