"""TrickleTextOutput: text a workflow produces (captions, detections) to a stream's data channel.

Runs in every frame's prompt of the stream (``streams.workflow.SIDE_OUTPUT_CLASSES``; the stream fills
in ``stream_id`` and ``frame_ticket``, which changes every frame so ComfyUI never serves it from its
cache); each string is queued to ``livepeer.data_output.DataOutput``, which publishes JSONL
batches on the stream's ``data_url``. Never blocks ComfyUI's worker thread; a stream without a data
channel (or a prompt queued from the UI) only reports that nothing was sent.
"""

from __future__ import annotations

from typing import Any

from ..host.comfy_api import io, ui
from ..host.running_prompt import running_prompt_secret
from ..livepeer.data_output import PROCESS_DATA_OUTPUTS
from ..streams.bridge import PROCESS_BRIDGES
from .live_io import stream_inputs


class TrickleTextOutput(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TrickleTextOutput",
            display_name="Trickle Text Output (Live)",
            category="trickle/io",
            description="Sends text to a live stream's data channel (JSONL batches, about 3 a second).",
            inputs=[
                io.String.Input("text", force_input=True, tooltip="The text to send: one item per run."),
                *stream_inputs(
                    "The live stream; filled in by the stream.", "Set by the stream for each frame's prompt."
                ),
            ],
            outputs=[],
            is_output_node=True,
            not_idempotent=True,
            is_experimental=True,
        )

    @classmethod
    def fingerprint_inputs(cls, **kwargs: Any) -> float:
        return float("nan")  # runs for every frame, even with the same text

    @classmethod
    def execute(cls, text: str, stream_id: str = "", frame_ticket: int = 0) -> io.NodeOutput:
        bridge = PROCESS_BRIDGES.lookup(stream_id) if stream_id else None
        if bridge is not None:  # only the stream's own prompts write to its data channel (as for frames)
            bridge.check_access(int(frame_ticket or 0), running_prompt_secret())
        output = PROCESS_DATA_OUTPUTS.lookup(stream_id) if stream_id else None
        if output is None:
            return io.NodeOutput(ui=ui.PreviewText(f"not sent: stream {stream_id!r} has no data channel"))
        output.put(text)
        return io.NodeOutput(ui=ui.PreviewText(f"sent to {stream_id}: {text[:200]}"))
