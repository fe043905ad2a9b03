"""The benchmark's fake gateway: feeds a pre-encoded source into a relay channel and reads the output back.

This is the measuring instrument, so it shares no code with the pipeline under test (our ``trickle/`` and
``media/`` packages, or pytrickle): it speaks the trickle protocol with plain aiohttp requests and demuxes
the output with ``bench.tsdemux``.

* :class:`SourceFeeder` POSTs one segment per GOP, writing each frame's TS bytes at its scheduled time
  (``fps`` real time, or as fast as the relay takes them) and records when each frame index was written.
* :class:`OutputReceiver` GETs the output channel segment by segment, decodes every frame as soon as its
  bytes are complete and records (frame index read from the pixels, time decoded).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import av
import numpy as np

from .source import EncodedSegment, EncodedSource, read_index
from .tsdemux import TsVideoDemuxer

logger = logging.getLogger(__name__)

TRICKLE_SEQ = "Lp-Trickle-Seq"
TRICKLE_LATEST = "Lp-Trickle-Latest"
TRICKLE_CLOSED = "Lp-Trickle-Closed"
STATUS_SEQ_UNAVAILABLE = 470


async def create_channel(session: aiohttp.ClientSession, url: str, mime_type: str = "video/MP2T") -> None:
    """Create a channel over HTTP (the relay runs with autocreate), as an orchestrator would up front."""
    async with session.post(url, headers={"Expect-Content": mime_type}, data=b"") as response:
        if response.status != 200:
            raise RuntimeError(f"creating {url} answered {response.status}: {await response.text()}")


async def delete_channel(session: aiohttp.ClientSession, url: str) -> None:
    """Close a channel: subscribers see end of stream."""
    async with session.delete(url) as response:
        await response.read()


@dataclass
class FeedLog:
    """What the feeder wrote: frame index -> monotonic time its last byte was handed to the socket."""

    sent: dict[int, float] = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None
    segments: int = 0

    @property
    def frames(self) -> int:
        return len(self.sent)


class SourceFeeder:
    """Publishes ``source`` to ``channel_url`` for ``duration_s`` at ``fps`` (None: unpaced)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        channel_url: str,
        source: EncodedSource,
        fps: float | None,
        duration_s: float,
    ) -> None:
        self._session = session
        self._url = channel_url.rstrip("/")
        self._source = source
        self._fps = fps
        self._duration_s = duration_s
        self.log = FeedLog()

    async def run(self) -> FeedLog:
        start = time.monotonic()
        self.log.started = start
        deadline = start + self._duration_s
        frame_number = 0
        try:
            for seq, segment in enumerate(self._source.segments):
                if time.monotonic() >= deadline:
                    break
                body = self._paced_chunks(segment, start, frame_number, deadline)
                async with self._session.post(f"{self._url}/{seq}", data=body) as response:
                    await response.read()
                    if response.status != 200 or response.headers.get(TRICKLE_CLOSED):
                        logger.warning("feed to %s stopped: %s", self._url, response.status)
                        break
                self.log.segments += 1
                frame_number += segment.frame_count
        finally:
            self.log.finished = time.monotonic()
        return self.log

    async def _paced_chunks(
        self, segment: EncodedSegment, start: float, first_number: int, deadline: float
    ) -> AsyncIterator[bytes]:
        for offset, chunk in enumerate(segment.frame_chunks):
            if self._fps is not None:
                due = start + (first_number + offset) / self._fps
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # unpaced, but let the receivers run
            now = time.monotonic()
            if now >= deadline:
                return
            yield chunk
            self.log.sent[segment.first_index + offset] = time.monotonic()


@dataclass
class ReceiveLog:
    """What the receiver decoded: (frame index, monotonic time decoded) in arrival order."""

    frames: list[tuple[int, float]] = field(default_factory=list)
    unreadable: int = 0
    segments: int = 0
    bytes_in: int = 0
    first_byte: float | None = None
    ended_by_close: bool = False

    @property
    def first_frame_time(self) -> float | None:
        return self.frames[0][1] if self.frames else None

    def distinct_indices(self) -> set[int]:
        return {index for index, _ in self.frames}


def read_index_from_luma(frame: av.VideoFrame, source_size: tuple[int, int]) -> int | None:
    """Read the stamped index from the Y plane (no RGB conversion: cheap enough at 8 streams x 24 fps)."""
    plane = frame.planes[0]
    luma = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)[: frame.height, : frame.width]
    # read_index wants HxWxC: a single channel is enough for its block means
    return read_index(luma[:, :, None], source_size)


class OutputReceiver:
    """Subscribes to ``channel_url`` from its next segment until ``stop()`` or the channel closes."""

    def __init__(
        self, session: aiohttp.ClientSession, channel_url: str, source_size: tuple[int, int]
    ) -> None:
        self._session = session
        self._source_size = source_size
        self._url = channel_url.rstrip("/")
        self._decoder = av.CodecContext.create("h264", "r")
        self._decoder.thread_count = 1
        self._stopping = False
        self.log = ReceiveLog()

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> ReceiveLog:
        seq = -1
        not_found = 0
        while not self._stopping:
            try:
                next_seq = await self._read_segment(seq)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                logger.debug("output read of %s/%s failed: %s", self._url, seq, exc)
                await asyncio.sleep(0.05)
                continue
            if next_seq is None:
                break
            if next_seq == -404:
                not_found += 1
                if not_found > 200:
                    break
                await asyncio.sleep(0.05)
                continue
            seq = next_seq
        return self.log

    async def _read_segment(self, seq: int) -> int | None:
        """Read one segment; return the next seq to read, None at end of stream, -404 if no channel."""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=5.0)
        async with self._session.get(f"{self._url}/{seq}", timeout=timeout) as response:
            if response.status == 404:
                return -404
            if response.status == STATUS_SEQ_UNAVAILABLE:
                return int(response.headers.get(TRICKLE_LATEST, seq + 1))
            if response.status != 200:
                raise aiohttp.ClientError(f"GET answered {response.status}")
            served = int(response.headers.get(TRICKLE_SEQ, seq))
            demuxer = TsVideoDemuxer()
            got_bytes = False
            try:
                async for chunk in response.content.iter_any():
                    if self.log.first_byte is None:
                        self.log.first_byte = time.monotonic()
                    got_bytes = True
                    self.log.bytes_in += len(chunk)
                    for pes in demuxer.feed(chunk):
                        self._decode(pes.payload)
                    if self._stopping:
                        return None
            except asyncio.TimeoutError:
                if self._stopping:
                    return None
            for pes in demuxer.flush():
                self._decode(pes.payload)
            if response.headers.get(TRICKLE_CLOSED) and not got_bytes:
                self.log.ended_by_close = True
                return None
            self.log.segments += int(got_bytes)
            return served + 1

    def _decode(self, payload: bytes) -> None:
        try:
            frames = self._decoder.decode(av.Packet(payload))
        except av.FFmpegError:
            self.log.unreadable += 1
            return
        for frame in frames:
            index = read_index_from_luma(frame, self._source_size)
            if index is None:
                self.log.unreadable += 1
            else:
                self.log.frames.append((index, time.monotonic()))
