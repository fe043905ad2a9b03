"""Watch: a trickle channel of MPEG-TS segments as one continuous MPEG-TS byte stream, for players
(ffplay, mpv, VLC, ``ffmpeg -i``). Starts at the channel's current segment (from its beginning, so with
PAT/PMT and a keyframe), follows the segments until the channel ends, and renumbers continuity counters
so the joins are not read as packet loss (``media.ts_packets.ContinuityRewriter``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from ..media.ts_packets import ContinuityRewriter
from ..trickle.errors import TrickleChannelNotFound, TrickleError, TrickleSegmentError
from ..trickle.protocol import SEQ_CURRENT
from ..trickle.subscriber import SubscribedSegment, TrickleSubscriber
from .errors import ApiError

logger = logging.getLogger(__name__)


class ChannelWatch:
    """``await open()`` (404/502 ``ApiError`` before any byte is sent), then ``async for b in chunks()``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.segments = 0
        self._subscriber = TrickleSubscriber(url, start_seq=SEQ_CURRENT)
        self._first: SubscribedSegment | None = None
        self._rewriter = ContinuityRewriter()

    async def open(self) -> None:
        try:
            self._first = await self._subscriber.next_segment()
        except TrickleChannelNotFound as err:
            await self.close()
            raise ApiError(404, f"No trickle channel at {self.url} (nothing published there yet?)",
                           {"url": self.url}) from err
        except TrickleError as err:
            await self.close()
            raise ApiError(502, f"Reading {self.url} failed: {err}", {"url": self.url}) from err

    async def chunks(self) -> AsyncIterator[bytes]:
        segment = self._first
        while segment is not None:
            self.segments += 1
            self._rewriter.start_segment()
            try:
                while chunk := await segment.read_chunk():
                    data = self._rewriter.feed(chunk)
                    if data:
                        yield data
            except TrickleSegmentError as err:
                logger.info("watch %s: segment %s truncated (%s); going on", self.url, segment.seq, err)
            try:
                segment = await self._subscriber.next_segment()
            except TrickleError as err:
                logger.info("watch %s: channel read failed (%s); ending the response", self.url, err)
                return

    async def close(self) -> None:
        await self._subscriber.close()
