"""The ingest end of a session: trickle subscriber -> decoder.

The subscriber reads segments on the event loop and feeds their bytes as they arrive to the media decoder,
whose own thread emits frames (resized to the stream's width x height) and audio packets. A missing input
channel is waited for (``streams.input_wait``).
"""

from __future__ import annotations

import asyncio
import logging

from ..media.decoder import StreamDecoder
from ..trickle.address_guard import AddressCheck
from ..trickle.errors import TrickleSegmentError
from ..trickle.redact import redact_url
from ..trickle.subscriber import TrickleSubscriber
from .input_wait import WaitingCallback, first_segment
from .media_io import AudioCallback, FrameCallback

logger = logging.getLogger(__name__)


class TrickleIngest:
    """Subscribes to ``url`` and decodes it (see the module docstring)."""

    # No rate cap by default: every input frame is offered to the workflow, and a workflow slower than the
    # input is handled by the hand-off's backlog bound (drop the oldest, keep the newest). A 30 fps cap
    # here held passthrough fed at 120 fps to 30 fps out; without it bench/run.py measured 118 fps.
    def __init__(self, url: str, *, width: int | None = None, height: int | None = None,
                 max_fps: float | None = None, input_wait_s: float = 0.0,
                 address_check: AddressCheck | None = None) -> None:
        self.url = url
        self.input_wait_s = input_wait_s
        self._on_waiting: WaitingCallback | None = None
        self._address_check = address_check
        self._width = width
        self._height = height
        self._max_fps = max_fps
        self._subscriber: TrickleSubscriber | None = None
        self._decoder: StreamDecoder | None = None
        self._closed = False
        self._pending_size: tuple[int, int] | None = None

    def resize(self, width: int, height: int) -> None:
        """A live update changed the stream's size: frames are scaled to it from the next segment on."""
        self._pending_size = (width, height)

    async def run(self, on_frame: FrameCallback, on_audio: AudioCallback) -> None:
        loop = asyncio.get_running_loop()
        decoded_all: asyncio.Future[BaseException | None] = loop.create_future()

        def finished(error: BaseException | None) -> None:
            def settle() -> None:
                if not decoded_all.done():
                    decoded_all.set_result(error)

            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:  # loop closed: nobody waits any more
                pass

        self._decoder = StreamDecoder(
            on_frame, on_audio, max_fps=self._max_fps, width=self._width, height=self._height,
            on_finished=finished,
        )
        self._decoder.start()
        self._subscriber = TrickleSubscriber(self.url, address_check=self._address_check)
        feeding = asyncio.ensure_future(self._feed_segments(self._subscriber, self._decoder))
        try:
            # a decoder that ends before its input did has failed: the stream ends now, not when the
            # input channel does (it may never)
            await asyncio.wait({feeding, decoded_all}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not feeding.done():
                feeding.cancel()
                await asyncio.gather(feeding, return_exceptions=True)
        if self._closed:
            return
        if not feeding.cancelled():
            feeding.result()  # (raises what the input raised)
            self._decoder.end_of_input()
        error = await decoded_all
        if error is not None:
            raise RuntimeError(f"decoder failed: {error}") from error
        if feeding.cancelled():
            raise RuntimeError("decoder stopped before its input ended")

    async def _feed_segments(self, subscriber: TrickleSubscriber, decoder: StreamDecoder) -> None:
        """Every segment's bytes to the decoder as they arrive, until the input channel ends."""
        segment = await first_segment(subscriber, self.input_wait_s, self._on_waiting)
        while segment is not None:
            # each trickle segment starts with PAT/PMT and an IDR: marking its first chunk flushes the
            # previous segment's last frames at once and picks up a changed layout (a restarted source's
            # new audio track)
            segment_start = True
            if self._pending_size is not None:
                decoder.set_target_size(*self._pending_size)
                self._pending_size = None
            try:
                while chunk := await segment.read_chunk():
                    decoder.feed(chunk, segment_start=segment_start)
                    segment_start = False
            except TrickleSegmentError as err:
                logger.info(
                    "input %s: segment %s truncated (%s); going on", redact_url(self.url), segment.seq, err
                )
            segment = await subscriber.next_segment()

    def watch_input(self, on_waiting: WaitingCallback) -> None:
        """``on_waiting(True)`` while the input channel does not exist yet, ``(False)`` once it delivers."""
        self._on_waiting = on_waiting

    async def close(self) -> None:
        self._closed = True
        if self._decoder is not None:
            self._decoder.stop()
        if self._subscriber is not None:
            await self._subscriber.close()
        if self._decoder is not None:
            await asyncio.to_thread(self._decoder.join, 1.0)
