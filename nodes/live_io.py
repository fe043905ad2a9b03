"""TrickleInput / TrickleOutput: where a live stream's frames enter and leave a workflow."""

from __future__ import annotations

from .._comfy import io


class StreamNotBoundError(RuntimeError):
    """Raised when a live node runs without a stream (e.g. from the Queue button)."""


def _require_stream(stream_id: str) -> None:
    if not stream_id:
        raise StreamNotBoundError(
            "This node is fed by a live stream. Start a stream (Trickle sidebar or POST /stream/start) "
            "instead of queueing the workflow directly."
        )


class TrickleInput(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TrickleInput",
            display_name="Trickle Input (Live)",
            category="trickle/io",
            description="The newest frame of a live trickle stream.",
            inputs=[
                io.String.Input("stream_id", default="", tooltip="Filled in by the stream session."),
            ],
            outputs=[io.Image.Output(display_name="image")],
            not_idempotent=True,
            is_experimental=True,
        )

    @classmethod
    def execute(cls, stream_id: str) -> io.NodeOutput:
        _require_stream(stream_id)
        raise StreamNotBoundError(f"Stream {stream_id!r} is not running.")


class TrickleOutput(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TrickleOutput",
            display_name="Trickle Output (Live)",
            category="trickle/io",
            description="Sends frames to a live trickle stream's output channel.",
            inputs=[
                io.Image.Input("images"),
                io.String.Input("stream_id", default="", tooltip="Filled in by the stream session."),
            ],
            outputs=[],
            is_output_node=True,
            is_experimental=True,
        )

    @classmethod
    def execute(cls, images: object, stream_id: str) -> io.NodeOutput:
        _require_stream(stream_id)
        raise StreamNotBoundError(f"Stream {stream_id!r} is not running.")
