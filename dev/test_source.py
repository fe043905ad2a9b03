"""A local test source: the synthetic pattern (plus a tone), encoded and published to a trickle channel
in real time with our own publisher.

Lets a user without a camera or gateway try a stream: ``POST /trickle/test-source`` (dev.routes) starts
one into ComfyUI's dev relay, and the channel URL goes into ``/stream/start`` as ``subscribe_url``.
Encoding runs on a worker thread (one frame per step), publishing and pacing on the event loop: each
chunk leaves when its media time has passed on the wall clock, so the channel fills like a live camera.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..media.synthetic import SyntheticChunk, SyntheticConfig, SyntheticSource
from ..trickle.errors import TrickleError
from ..trickle.publisher import PublishedSegment, TricklePublisher

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class TestSourceOptions:
    """What the test source publishes; ``duration_s=None`` runs until stopped."""

    __test__ = False  # not a pytest test class, despite the name

    width: int = 512
    height: int = 512
    fps: float = 30.0
    duration_s: float | None = None
    audio: bool = True


class TestSource:
    """Publishes the synthetic source to ``channel_url`` until its duration ends or ``stop()``."""

    __test__ = False

    def __init__(self, channel_url: str, options: TestSourceOptions | None = None) -> None:
        self.channel_url = channel_url
        self.options = options or TestSourceOptions()
        self.frames_sent = 0
        self.segments_sent = 0
        self.error: str | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def finished(self) -> bool:
        """True once publishing ended (duration reached, stopped or failed)."""
        return self._task is not None and self._task.done()

    def describe(self) -> dict[str, Any]:
        """JSON-ready state for the routes."""
        return {
            "channel_url": self.channel_url,
            "width": self.options.width,
            "height": self.options.height,
            "fps": self.options.fps,
            "duration_s": self.options.duration_s,
            "audio": self.options.audio,
            "running": self._task is not None and not self._task.done(),
            "frames_sent": self.frames_sent,
            "segments_sent": self.segments_sent,
            "error": self.error,
        }

    async def start(self) -> None:
        """Start publishing in the background (returns at once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"test-source {self.channel_url}"
            )

    async def wait(self) -> None:
        """Until publishing ended."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Stop publishing and delete the channel (its subscribers see the end). Idempotent, quick."""
        self._stop.set()
        task = self._task
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
        if not done:  # a write stuck on the network: cut it
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        opts = self.options
        frame_count = None if opts.duration_s is None else max(1, math.ceil(opts.duration_s * opts.fps))
        config = SyntheticConfig(
            width=opts.width, height=opts.height, fps=opts.fps, audio="opus" if opts.audio else None
        )
        chunks = SyntheticSource(config).chunks(frame_count)
        publisher = TricklePublisher(self.channel_url)
        loop = asyncio.get_running_loop()
        segment: PublishedSegment | None = None
        segment_index = -1
        started_at: float | None = None
        try:
            while not self._stop.is_set():
                chunk = await _next_chunk(chunks)
                if chunk is None:
                    break
                if started_at is None:
                    started_at = loop.time()
                # Real time: a chunk leaves once its frame's media time has passed on the wall clock.
                delay = started_at + chunk.media_time - loop.time()
                if delay > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                    if self._stop.is_set():
                        break
                if segment is None or chunk.segment != segment_index:
                    if segment is not None:
                        await segment.close()
                        self.segments_sent += 1
                    segment, segment_index = await publisher.open_segment(), chunk.segment
                if chunk.data:
                    await segment.write(chunk.data)
                self.frames_sent = max(self.frames_sent, chunk.frame_index + 1)
                if chunk.ends_segment:
                    await segment.close()
                    self.segments_sent += 1
                    segment = None
            if segment is not None:
                await segment.close()
                self.segments_sent += 1
                segment = None
        except TrickleError as err:
            self.error = str(err)
            logger.warning("comfy-trickle: test source %s stopped: %s", self.channel_url, err)
        except Exception as err:
            self.error = f"{type(err).__name__}: {err}"
            logger.exception("comfy-trickle: test source %s failed", self.channel_url)
        finally:
            if segment is not None:
                with contextlib.suppress(Exception):
                    await segment.abort()
            await publisher.close(delete_channel=True)
            # Closing the generator closes its encoder; it runs on a thread like the encoding did.
            await asyncio.to_thread(chunks.close)
            logger.info(
                "comfy-trickle: test source %s ended after %d frames, %d segments",
                self.channel_url,
                self.frames_sent,
                self.segments_sent,
            )


async def _next_chunk(chunks: Iterator[SyntheticChunk]) -> SyntheticChunk | None:
    # Shielded so a cancelled stop never leaves the generator running on its thread while we close it.
    future = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await future
        raise
