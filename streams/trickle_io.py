"""The real ends of a session: ``trickle_media`` builds both; the ingest (trickle subscriber -> decoder)
is ``streams.trickle_ingest``, the egress (encoder -> trickle publisher) lives here.

Egress: ``submit`` (ComfyUI's worker thread) only appends to a bounded queue (full: the frame is dropped,
the executor never waits). One encode thread per stream turns each IMAGE batch into uint8 frames, encodes
them at their input frame's pts (audio passes through into the same segments, on the input timeline)
and hands the TS bytes to the publisher task on the event loop as typed events through one bounded outbox
(``streams.egress_events``). If the network is slower than the encoder, the encode thread waits (bounded
bytes in flight), the queue fills and frames are dropped - memory stays bounded and the executor is never
held up. If encoding fails, the stream ends in ``error`` with the encoder's message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..media.encoder import EncoderSettings, SegmentEncoder
from ..media.frames import comfy_image_to_frames
from ..media.types import MPEGTS_TIME_BASE, AudioPacket
from ..trickle.address_guard import AddressCheck, TrickleHostRefused
from ..trickle.errors import (
    TrickleChannelClosed,
    TrickleChannelNotFound,
    TrickleError,
    TrickleRetriesExhausted,
    TrickleTLSError,
)
from ..trickle.publisher import PublishedSegment, TricklePublisher
from ..trickle.redact import redact_url
from .egress_events import (
    EgressEvent,
    EgressOutbox,
    EncoderStopped,
    FrameEncoded,
    SegmentBytes,
    SegmentEnded,
    SegmentStarted,
)
from .handoff import IMAGE_TENSOR_KEY, InputFrame, frames_of
from .media_io import StageCallback, WrittenCallback
from .output_health import OutputHealth
from .stages import Stage
from .trickle_ingest import TrickleIngest

logger = logging.getLogger(__name__)

# Output frames waiting for the encoder: the egress may fall behind by about as much video as the input
# hand-off holds (``max_backlog_s``) before it drops, within these bounds (memory: IMAGE tensors are float).
EGRESS_QUEUE_FRAMES = 30
EGRESS_QUEUE_BOUNDS = (8, 64)
DEFAULT_FRAME_SECONDS = Fraction(1, 30)
# the output channel is gone for good: the stream cannot go on
FATAL_OUTPUT_ERRORS = (
    TrickleHostRefused, TrickleChannelClosed, TrickleChannelNotFound, TrickleRetriesExhausted, TrickleTLSError
)


def encoder_threads(live_streams: int, cores: int | None = None) -> int:
    """x264 threads for one stream's encoder: the machine's cores shared among the live streams, at least
    one. x264's own choice, about 1.5 threads per core for every encoder, gave a dozen streams on 2 cores
    three dozen x264 threads on top of their own, all competing for the same cores; the streams themselves
    are the parallelism (bench/README.md, issue 22)."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, live_streams))


def trickle_media(
    config: Any, max_backlog_s: float = 1.0, input_wait_s: float = 0.0,
    address_check: AddressCheck | None = None, live_streams: Callable[[], int] | None = None,
) -> tuple[TrickleIngest, TrickleEgress]:
    """Ingest and egress for a ``StreamConfig``; ``address_check`` holds every connection to the host
    allowlist at connect time (``trickle.address_guard``); ``live_streams`` (any thread) counts the streams
    whose encoders share the cores (``encoder_threads``; None: x264 decides)."""
    low, high = EGRESS_QUEUE_BOUNDS
    queue_frames = max(low, min(high, round(max_backlog_s * 30)))
    settings = EncoderSettings(threads=lambda: encoder_threads(live_streams())) if live_streams else None
    return (
        TrickleIngest(config.subscribe_url, width=config.width, height=config.height,
                      input_wait_s=input_wait_s, address_check=address_check),
        TrickleEgress(config.publish_url, name=config.stream_id, settings=settings, queue_frames=queue_frames,
                      address_check=address_check),
    )


@dataclass(frozen=True, slots=True)
class _Output:
    """Images ``TrickleOutput`` produced for ``frame``, waiting for the encode thread."""

    frame: InputFrame
    images: Any


class TrickleEgress:
    """Encodes and publishes output frames to ``url`` (see the module docstring)."""

    def __init__(self, url: str, *, name: str = "", settings: EncoderSettings | None = None,
                 queue_frames: int = EGRESS_QUEUE_FRAMES, address_check: AddressCheck | None = None) -> None:
        self.url = url
        self._address_check = address_check
        self._name = name or url
        # None: no more frames (finish or close)
        self._frames: queue.Queue[_Output | None] = queue.Queue(maxsize=queue_frames)
        # input frames in that queue (a batch's images count once per frame): the memory bound
        self._queue_frames = queue_frames
        self._queued_frames = 0
        self._queued_lock = threading.Lock()
        self._outbox = EgressOutbox()
        self._encoder = SegmentEncoder(_OutboxSink(self._outbox), settings)
        self._publisher: TricklePublisher | None = None
        self._publish_task: asyncio.Task[None] | None = None
        self._segment: PublishedSegment | None = None  # the trickle segment being written
        self._drained = False  # the publisher task stopped taking events (it ends the channel next)
        self._thread: threading.Thread | None = None
        self._on_written: WrittenCallback | None = None
        self._on_failed: Callable[[str], None] | None = None
        self._on_stage: StageCallback | None = None
        self._closed = False
        self._encoding = True  # False once the encode thread ended (later frames are dropped)
        self._last_input_pts: int | None = None
        self._input_step: int | None = None
        self._health = OutputHealth()

    # --- Egress protocol ----------------------------------------------------------------------------------
    def start(
        self, on_written: WrittenCallback, on_failed: Callable[[str], None],
        on_stage: StageCallback | None = None,
    ) -> None:
        self._on_written = on_written
        self._on_failed = on_failed
        self._on_stage = on_stage
        loop = asyncio.get_running_loop()
        self._outbox.attach(loop)
        self._publisher = TricklePublisher(self.url, address_check=self._address_check)
        self._publish_task = loop.create_task(self._publish(), name=f"trickle-publish-{self._name}")
        self._thread = threading.Thread(target=self._encode_loop, name=f"trickle-encode-{self._name}",
                                        daemon=True)
        self._thread.start()

    def submit(self, frame: InputFrame, images: Any) -> bool:
        if self._closed or not self._encoding:
            return False
        count = len(frames_of(frame))
        with self._queued_lock:  # (a batch larger than the bound still goes into an empty queue)
            if self._queued_frames and self._queued_frames + count > self._queue_frames:
                return False
            self._queued_frames += count
        try:
            self._frames.put_nowait(_Output(frame, images))
        except queue.Full:
            self._dequeued(count)
            return False
        return True

    def _dequeued(self, count: int) -> None:
        with self._queued_lock:
            self._queued_frames -= count

    def put_audio(self, packet: AudioPacket) -> None:
        if not self._closed:
            self._encoder.add_audio(packet)

    async def finish(self) -> None:
        # an encode thread that failed takes nothing more (its queue may stay full), so wait in short
        # steps that look at it again
        await asyncio.to_thread(self._put_end_marker)
        if self._publish_task is not None:
            await asyncio.shield(self._publish_task)

    def _put_end_marker(self) -> None:
        """The end marker behind every queued frame (waits while the encode thread lives)."""
        while self._encoding:
            try:
                self._frames.put(None, timeout=0.5)
                return
            except queue.Full:
                continue

    async def close(self) -> None:
        self._closed = True
        self._outbox.close()
        # make room for the end marker: queued frames are abandoned
        while True:
            try:
                self._frames.get_nowait()
            except queue.Empty:
                pass
            try:
                self._frames.put_nowait(None)
                break
            except queue.Full:  # ComfyUI's worker submitted meanwhile: drain again
                continue
        if self._publish_task is not None and not self._publish_task.done():
            # still draining: stop it; already past (ending the channel after a failure): let it finish
            if not self._drained:
                self._publish_task.cancel()
            await asyncio.wait({self._publish_task})
        if self._publisher is not None:
            await self._publisher.close(delete_channel=True)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 1.0)

    # --- encode thread ------------------------------------------------------------------------------------
    def _encode_loop(self) -> None:
        error: str | None = None
        try:
            while (output := self._frames.get()) is not None:
                self._dequeued(len(frames_of(output.frame)))
                self._encode(output.frame, output.images)
            if not self._closed:
                self._encoder.close()  # flushes the last segment
        except Exception as err:
            # the stream cannot go on without its output: the publisher task reports it (stream in error)
            logger.exception("output %s: encoder failed", redact_url(self.url))
            error = f"encoding failed: {err}"
        finally:
            # stopped: free the codec (and its threads) now, not when this object is collected
            self._encoder.discard()
            self._encoding = False
            self._outbox.put(EncoderStopped(error))

    def _encode(self, frame: InputFrame, images: Any) -> None:
        inputs = frames_of(frame)  # the frames of the prompt (a batch: params.max_frames_per_prompt)
        if images is frame.extra.get(IMAGE_TENSOR_KEY):
            # the input tensor came back as is (passthrough): reuse its exact uint8 pixels. Safe because
            # ComfyUI nodes never modify their inputs in place (its own cache relies on that).
            rgbs = [batched.image for batched in inputs]
        else:
            rgbs = comfy_image_to_frames(images)
        for batched in inputs:
            pts = int(batched.pts or 0)
            if self._last_input_pts is not None and pts > self._last_input_pts:
                self._input_step = pts - self._last_input_pts
            self._last_input_pts = pts
        for i, rgb in enumerate(rgbs):
            if self._closed:
                return
            source, out_pts = self._place(inputs, i, len(rgbs))
            started = time.perf_counter()
            self._encoder.encode(rgb, out_pts, frame.time_base)
            encoded = time.perf_counter()
            if self._on_stage is not None:
                self._on_stage(Stage.ENCODE, encoded - started)
                # behind this frame's bytes in the outbox: its "publish" ends when the publisher reaches it
                self._outbox.put(FrameEncoded(encoded))
            if self._on_written is not None:
                self._on_written(source, rgb, out_pts)

    def _place(self, inputs: tuple[InputFrame, ...], index: int, count: int) -> tuple[InputFrame, int]:
        """The input frame output image ``index`` of ``count`` stands for, and its pts: one image per input
        frame keeps each frame's pts; any other count is spread evenly over the inputs' duration (e.g. a
        workflow that makes 4 images of each frame, or 1 of a batch)."""
        if count == len(inputs):
            return inputs[index], int(inputs[index].pts or 0)
        first = int(inputs[0].pts or 0)
        span = int(inputs[-1].pts or 0) - first + self._frame_step(inputs[0])
        step = max(1, span // count)
        return inputs[min(len(inputs) - 1, index * len(inputs) // count)], first + index * step

    def _frame_step(self, frame: InputFrame) -> int:
        if self._input_step is not None:
            return self._input_step
        time_base = frame.time_base or MPEGTS_TIME_BASE
        return max(1, round(DEFAULT_FRAME_SECONDS / Fraction(time_base)))

    # --- publisher task (event loop) ----------------------------------------------------------------------
    async def _publish(self) -> None:
        """Drain the outbox into trickle segments until the encode thread stopped or the output failed."""
        assert self._publisher is not None  # noqa: S101 - set in start()
        try:
            await self._drain()
        finally:
            self._drained = True
            if self._segment is not None:
                await self._segment.abort()
        await self._publisher.close(delete_channel=True)

    async def _drain(self) -> None:
        while True:
            for event in await self._outbox.take():
                if not await self._apply(event):
                    return

    async def _apply(self, event: EgressEvent) -> bool:
        """Act on one event; False when publishing is over."""
        assert self._publisher is not None  # noqa: S101 - set in start()
        try:
            match event:
                case SegmentStarted():
                    self._segment = await self._publisher.open_segment()
                case SegmentBytes(data=data):
                    try:
                        if self._segment is not None:
                            await self._segment.write(data)
                    finally:
                        self._outbox.written(len(data))
                case SegmentEnded() if self._segment is not None:
                    done, self._segment = self._segment, None
                    await done.close()
                    self._health.succeeded()
                case FrameEncoded(at=encoded) if self._on_stage is not None:
                    # every byte a frame's encode() produced (and all before) has been written
                    self._on_stage(Stage.PUBLISH, time.perf_counter() - encoded)
                case EncoderStopped(error=error):
                    if error is not None:
                        self._fail(error)
                    return False
        except FATAL_OUTPUT_ERRORS as err:
            logger.warning("output %s: %s", redact_url(self.url), err)
            self._fail(f"output failed: {err}")
            return False
        except TrickleError as err:
            # one segment lost; the next starts with an IDR, so the output recovers by itself - unless
            # segments keep failing (see output_health)
            logger.warning("output %s: segment failed: %s", redact_url(self.url), err)
            if self._segment is not None:
                await self._segment.abort()
            self._segment = None
            if (message := self._health.failed(err)) is not None:
                self._fail(message)
                return False
        return True

    def _fail(self, message: str) -> None:
        if self._on_failed is not None:
            self._on_failed(message)


class _OutboxSink:
    """``SegmentSink`` for the encoder: its segment events go to the publisher task through the outbox."""

    def __init__(self, outbox: EgressOutbox) -> None:
        self._outbox = outbox

    def start_segment(self, index: int) -> None:
        self._outbox.put(SegmentStarted(index))

    def write(self, data: bytes) -> None:
        self._outbox.put(SegmentBytes(bytes(data)))

    def end_segment(self) -> None:
        self._outbox.put(SegmentEnded())
