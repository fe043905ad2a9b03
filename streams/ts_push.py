"""Push: one long MPEG-TS byte stream (an HTTP POST from ffmpeg or OBS) into a trickle channel, one
trickle segment per keyframe interval (``media.ts_packets.KeyframeCutter``), so a stream subscribed to
the channel decodes every segment on its own.

Bounds: the producer is read no faster than ``max_bytes_per_s`` (we wait, TCP pushes back: a producer
without ``-re`` is slowed to that rate, not refused), one segment may not exceed ``max_segment_bytes``
(``ApiError`` 413) and a body whose first ``max_segment_bytes`` hold no keyframe is refused (400).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ..media.ts_packets import KeyframeCutter
from ..trickle.errors import TrickleError
from ..trickle.publisher import PublishedSegment, TricklePublisher
from .errors import ApiError

logger = logging.getLogger(__name__)

TS_MIME_TYPE = "video/MP2T"
# a burst above the rate is allowed for this long (a producer catching up after a stall)
RATE_BURST_S = 2.0


@dataclass(frozen=True, slots=True)
class PushResult:
    url: str
    segments: int
    bytes_in: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {"url": self.url, "segments": self.segments, "bytes": self.bytes_in,
                "seconds": round(self.seconds, 3)}


class RateBound:
    """Waits so that bytes read stay under ``bytes_per_s`` on average (with a short burst allowance)."""

    def __init__(self, bytes_per_s: int) -> None:
        self.bytes_per_s = bytes_per_s
        self._started = time.monotonic()
        self.total = 0

    async def take(self, size: int) -> None:
        self.total += size
        ahead_s = self.total / self.bytes_per_s - (time.monotonic() - self._started) - RATE_BURST_S
        if ahead_s > 0:
            await asyncio.sleep(ahead_s)


async def push_ts(
    chunks: AsyncIterator[bytes], url: str, *, max_bytes_per_s: int, max_segment_bytes: int
) -> PushResult:
    """Cut ``chunks`` at keyframes and publish the segments to ``url``; ends the channel at the end."""
    started = time.monotonic()
    cutter = KeyframeCutter()
    rate = RateBound(max_bytes_per_s)
    publisher = TricklePublisher(url, mime_type=TS_MIME_TYPE)
    segment: PublishedSegment | None = None
    try:
        async for chunk in chunks:
            await rate.take(len(chunk))
            for piece in cutter.feed(chunk):
                if piece.starts_segment:
                    if segment is not None:
                        await segment.close()
                    segment = await publisher.open_segment()
                if segment is None:  # the cutter's first piece always starts a segment
                    continue
                if segment.bytes_written + len(piece.data) > max_segment_bytes:
                    raise ApiError(413, f"One segment (keyframe to keyframe) exceeds {max_segment_bytes} "
                                   "bytes; send keyframes more often (e.g. ffmpeg -g 60)",
                                   {"max_segment_bytes": max_segment_bytes})
                await segment.write(piece.data)
            if not cutter.started and rate.total > max_segment_bytes:
                raise ApiError(400, f"No H.264/HEVC keyframe in the first {max_segment_bytes} bytes: the "
                               "body must be MPEG-TS with video (e.g. ffmpeg -c:v libx264 -f mpegts)")
        if segment is not None:
            await segment.close()
            segment = None
    except TrickleError as err:
        raise ApiError(502, f"Publishing to {url} failed: {err}", {"url": url}) from err
    finally:
        if segment is not None:
            await segment.abort()
        await publisher.close(delete_channel=True)
    if not cutter.started:
        raise ApiError(400, "The body held no MPEG-TS video keyframe: nothing was published "
                       "(expected MPEG-TS with H.264/HEVC video, e.g. ffmpeg -c:v libx264 -f mpegts)")
    return PushResult(url, cutter.segments, rate.total, time.monotonic() - started)
