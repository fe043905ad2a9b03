"""TrickleInput / TrickleOutput: where a live stream's frames enter and leave a workflow.

The stream session queues one prompt per frame and fills in two inputs of these nodes: ``stream_id``
and ``frame_ticket`` (the ticket of the frame that prompt is for, see ``streams.bridge``). The frame is
registered before its prompt is queued, so ``TrickleInput`` returns at once and never holds ComfyUI's
single executor thread waiting for the network.

Queued from the UI (no ticket): ``TrickleInput`` serves the newest frame of the running stream named by
``stream_id`` and ``TrickleOutput`` only reports; with no running stream both fail at once with a
readable message. A prompt the stream queued itself that finds its stream stopped (prompts in flight at
Stop) ends quietly: ``TrickleOutput`` reports "stream stopped", ``TrickleInput`` ends the prompt the way
ComfyUI's Interrupt does (``host.running_prompt.end_running_prompt``), so a stop logs no tracebacks.
With ``COMFY_TRICKLE_TOKEN`` set both fail for any prompt the stream did not queue itself: only its own
prompts carry the secret of their ticket (``streams.bridge``, ``host.running_prompt``).

comfystream's ``LoadTensor``/``SaveTensor`` are *not* registered here; stream workflows using them are
rewritten to these nodes at start (see ``streams.workflow``), so an installed comfystream keeps its own.
"""

from __future__ import annotations

from typing import Any

from ..host.comfy_api import io, ui
from ..host.running_prompt import end_running_prompt, running_prompt_secret
from ..streams.bridge import PROCESS_BRIDGES, FrameBridge
from ..streams.errors import StreamNotBound
from ..streams.handoff import InputFrame
from .frames import frame_to_image

DEFAULT_TIMEOUT_S = 5.0


def stream_inputs(stream_tooltip: str, ticket_tooltip: str) -> list[io.Input]:
    """The two inputs every live node has, which the stream fills in for each frame's prompt.

    They are plumbing, not something an artist sets: ``socketless`` (no input slot to wire) and the
    frontend's ``hidden`` input option (ComfyUI's frontend then draws no widget; comfy_api 0.3.75 has no
    keyword for it, so it goes through the input's ``extra_dict``, which ``as_dict`` merges into the
    node definition). They stay declared inputs, so the stream's prompts and ComfyUI's validation work as
    before, and a graph saved with them keeps its values.
    """
    inputs: list[io.Input] = [
        io.String.Input("stream_id", default="", socketless=True, tooltip=stream_tooltip),
        io.Int.Input(
            "frame_ticket", default=0, min=0, optional=True, socketless=True, tooltip=ticket_tooltip
        ),
    ]
    for plumbing in inputs:
        plumbing.extra_dict["hidden"] = True
    return inputs


def _bridge(stream_id: str) -> FrameBridge:
    if not stream_id:
        raise StreamNotBound(
            "This node is fed by a live stream and has no stream_id. Start a stream (Trickle sidebar or "
            "POST /stream/start) instead of queueing this workflow directly."
        )
    bridge = PROCESS_BRIDGES.lookup(stream_id)
    if bridge is None:
        raise StreamNotBound(
            f"Stream {stream_id!r} is not running. Start it (Trickle sidebar or POST /stream/start), "
            "or set stream_id to a running stream."
        )
    return bridge


class TrickleInput(io.ComfyNode):
    """The current frame of a live trickle stream, as IMAGE ``[1, H, W, 3]`` float32 in 0..1 (``[B, ...]``:
    the B frames of a batch, ``params.max_frames_per_prompt``)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TrickleInput",
            display_name="Trickle Input (Live)",
            category="trickle/io",
            description="The current frame of a live trickle stream. Re-executes for every frame.",
            inputs=[
                *stream_inputs(
                    "The live stream feeding this node; filled in by the stream.",
                    "Set by the stream for each frame's prompt; leave 0 (the newest frame is used).",
                ),
                io.Float.Input(
                    "timeout_seconds",
                    default=DEFAULT_TIMEOUT_S,
                    min=0.1,
                    max=60.0,
                    step=0.1,
                    optional=True,
                    tooltip="How long to wait for a frame before failing.",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="image"),
                io.Int.Output(display_name="width"),
                io.Int.Output(display_name="height"),
            ],
            not_idempotent=True,
            is_experimental=True,
        )

    @classmethod
    def fingerprint_inputs(cls, **kwargs: Any) -> float:
        # A fresh NaN object never equals the previous one, so the node re-runs for every frame. A shared
        # math.nan would compare equal to itself by identity inside the cache key and get cached forever.
        return float("nan")

    @classmethod
    def execute(
        cls, stream_id: str, frame_ticket: int = 0, timeout_seconds: float = DEFAULT_TIMEOUT_S
    ) -> io.NodeOutput:
        ticket, secret = int(frame_ticket or 0), running_prompt_secret()
        try:
            frame: InputFrame = _bridge(stream_id).input_frame(ticket, float(timeout_seconds), secret)
        except StreamNotBound:
            if ticket and secret:  # the stream's own prompt, its stream stopped meanwhile: expected at stop
                end_running_prompt(f"stream {stream_id!r} stopped or dropped frame {ticket}; its prompt ends")
            raise
        image = frame_to_image(frame)
        return io.NodeOutput(image, int(image.shape[2]), int(image.shape[1]))


class TrickleOutput(io.ComfyNode):
    """Sends images to a live trickle stream's output channel (handed to its encoder, never blocking)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TrickleOutput",
            display_name="Trickle Output (Live)",
            category="trickle/io",
            description="Sends frames to a live trickle stream's output channel.",
            inputs=[
                io.Image.Input("images", tooltip="Frames to send: any batch size, each image one frame."),
                *stream_inputs(
                    "The live stream to send to; filled in by the stream.",
                    "Set by the stream for each frame's prompt; leave 0.",
                ),
            ],
            outputs=[],
            is_output_node=True,
            not_idempotent=True,
            is_experimental=True,
        )

    @classmethod
    def fingerprint_inputs(cls, **kwargs: Any) -> float:
        # Always run, even if the images did not change: every frame's prompt must deliver its frame.
        return float("nan")

    @classmethod
    def execute(cls, images: Any, stream_id: str, frame_ticket: int = 0) -> io.NodeOutput:
        ticket, secret = int(frame_ticket or 0), running_prompt_secret()
        stopped = ui.PreviewText(f"not sent: stream {stream_id} stopped")
        try:
            bridge = _bridge(stream_id)
        except StreamNotBound:
            if ticket and secret:  # the stream's own prompt, its stream stopped meanwhile: expected at stop
                return io.NodeOutput(ui=stopped)
            raise
        if bridge.deliver(ticket, images, secret):
            text = f"sent {int(images.shape[0])} frame(s) to {stream_id}"
        elif ticket and secret:
            return io.NodeOutput(ui=stopped)
        else:
            text = f"not sent: only prompts queued by stream {stream_id} reach its output"
        return io.NodeOutput(ui=ui.PreviewText(text))
