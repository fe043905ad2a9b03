"""The two network/media ends of a session, as the session sees them.

``Ingest``: trickle subscriber -> streaming decoder; ``Egress``: image conversion -> encoder -> trickle
publisher. The real implementations live in ``streams.trickle_io``; unit tests use fakes. Both ends
own their threads and sockets and free all of them in ``close()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..media.types import AudioPacket, DecodedFrame
from .handoff import InputFrame
from .stages import Stage

FrameCallback = Callable[[DecodedFrame], None]
AudioCallback = Callable[[AudioPacket], None]
# (the input frame, the RGB uint8 array written, its pts) - called on the egress thread per written frame
WrittenCallback = Callable[[InputFrame, Any, int], None]
# (the stage, seconds one frame spent in it) - any thread
StageCallback = Callable[[Stage, float], None]


class Ingest(Protocol):
    """Subscribes to the input channel and decodes it."""

    async def run(self, on_frame: FrameCallback, on_audio: AudioCallback) -> None:
        """Deliver frames (on the decode thread) until the input ends and every frame was emitted.
        Raises on a fatal input error."""
        ...

    async def close(self) -> None:
        """Stop at once and free every socket and thread (idempotent)."""
        ...


class Egress(Protocol):
    """Encodes output frames (keeping their input pts) with the passed-through audio and publishes them."""

    def start(
        self, on_written: WrittenCallback, on_failed: Callable[[str], None],
        on_stage: StageCallback | None = None,
    ) -> None:
        """Start the egress thread(s); ``on_written`` is called for every frame written, ``on_failed``
        (on the event loop) once if the output channel is gone for good or encoding failed (the
        stream cannot go on), ``on_stage`` with each frame's ``Stage.ENCODE`` and ``Stage.PUBLISH``
        times."""
        ...

    def submit(self, frame: InputFrame, images: Any) -> bool:
        """Queue the images ``TrickleOutput`` produced for ``frame`` (any thread, never blocks).
        Returns False when the frame had to be dropped (egress full or closed)."""
        ...

    def put_audio(self, packet: AudioPacket) -> None:
        """Queue an input audio packet for passthrough (decode thread, never blocks)."""
        ...

    async def finish(self) -> None:
        """Input ended: write everything queued, then end the output channel."""
        ...

    async def close(self) -> None:
        """Stop at once and free every socket and thread (idempotent)."""
        ...


MediaFactory = Callable[[Any], tuple[Ingest, Egress]]
