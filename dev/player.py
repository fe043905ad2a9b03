"""Full-rate output view for the browser: a relay channel's H.264 access units over one streaming response.

``GET /trickle/player/{channel}`` (bearer token; any channel on the dev relay, e.g. a stream's ``-out``)
follows the channel from its current segment, demuxes the TS with PyAV without decoding
(``media/ts_demux.py``) and streams length-prefixed messages; the browser decodes them with WebCodecs.

Message: 4 bytes big-endian length of what follows, 1 byte kind, then
* kind 1 (access unit): 1 byte flags (bit 0: keyframe), 8 bytes timestamp in microseconds (signed),
  8 bytes double: when the server demuxed it (ms since the epoch), then the Annex B bytes;
* kind 2 (event): UTF-8 JSON, ``{"type": "end"}`` when the channel ends.

A viewer that cannot keep up loses access units up to the next keyframe (the queue is bounded), so it stays
live rather than falling behind. At most ``MAX_PLAYERS`` at once (429); unknown channel 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from typing import TYPE_CHECKING

from aiohttp import web

from ..media.ts_demux import AccessUnit, AccessUnitDemuxer
from ..routes.responses import json_errors
from ..routes.security import requires_token
from ..streams.errors import ApiError
from ..trickle.errors import TrickleError
from ..trickle.subscriber import TrickleSubscriber

if TYPE_CHECKING:
    from .routes import DevRoutes

logger = logging.getLogger(__name__)

MAX_PLAYERS = 8
MAX_QUEUED_UNITS = 90
DISCONNECT_POLL_S = 1.0
KIND_UNIT = 1
KIND_EVENT = 2
UNIT_HEADER = struct.Struct(">IBBqd")  # length, kind, flags, timestamp_us, demuxed_at_ms
EVENT_HEADER = struct.Struct(">IB")
KEYFRAME_FLAG = 0x01
MIME_TYPE = "application/vnd.comfy-trickle.h264-units"


def encode_unit(unit: AccessUnit) -> bytes:
    flags = KEYFRAME_FLAG if unit.keyframe else 0
    length = UNIT_HEADER.size - 4 + len(unit.data)
    return UNIT_HEADER.pack(length, KIND_UNIT, flags, unit.timestamp_us, unit.demuxed_at * 1000.0) + unit.data


def encode_event(event: dict[str, object]) -> bytes:
    payload = json.dumps(event).encode()
    return EVENT_HEADER.pack(1 + len(payload), KIND_EVENT) + payload


class PlayerRoutes:
    """The player route of one ``DevRoutes``."""

    def __init__(self, dev: DevRoutes) -> None:
        self.dev = dev
        self.settings = dev.settings
        self.players = 0

    def setup_routes(self, routes: web.RouteTableDef) -> None:
        routes.get("/trickle/player/{channel}")(self.play)

    @json_errors
    @requires_token
    async def play(self, request: web.Request) -> web.StreamResponse:
        channel = request.match_info["channel"]
        if channel not in self.dev.relay.channels:
            raise ApiError(404, f"Channel {channel} not found on the dev relay", {"channel": channel})
        if self.players >= MAX_PLAYERS:
            raise ApiError(429, f"At most {MAX_PLAYERS} players at once")
        self.players += 1
        try:
            response = web.StreamResponse(headers={"Content-Type": MIME_TYPE, "Cache-Control": "no-store"})
            await response.prepare(request)
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await self._follow(self.dev.relay_base_url(request) + channel, request, response)
            return response
        finally:
            self.players -= 1

    async def _follow(self, url: str, request: web.Request, response: web.StreamResponse) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[AccessUnit | None] = asyncio.Queue(MAX_QUEUED_UNITS)
        skipping = False

        def hand_over(unit: AccessUnit) -> None:  # on the loop, called from the demux thread
            nonlocal skipping
            if skipping and not unit.keyframe:
                return
            skipping = queue.full()  # drop this unit and everything up to the next keyframe
            if not skipping:
                queue.put_nowait(unit)

        demuxer = AccessUnitDemuxer(lambda unit: loop.call_soon_threadsafe(hand_over, unit))
        demuxer.start()
        reader = asyncio.create_task(self._read(url, demuxer, queue))
        try:
            while True:
                try:
                    unit = await asyncio.wait_for(queue.get(), DISCONNECT_POLL_S)
                except asyncio.TimeoutError:
                    # aiohttp does not cancel a handler whose client left; a quiet channel would keep
                    # this subscriber (and a player slot) forever, so look.
                    if request.transport is None or request.transport.is_closing():
                        return
                    continue
                if unit is None:
                    break
                await response.write(encode_unit(unit))
            await response.write(encode_event({"type": "end"}))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            demuxer.stop()
            await asyncio.to_thread(demuxer.join, 2.0)

    @staticmethod
    async def _read(url: str, demuxer: AccessUnitDemuxer, queue: asyncio.Queue[AccessUnit | None]) -> None:
        subscriber = TrickleSubscriber(url)
        try:
            async for segment in subscriber:
                first = True
                while chunk := await segment.read_chunk():
                    demuxer.feed(chunk, segment_start=first)
                    first = False
        except TrickleError as err:
            logger.info("comfy-trickle: player of %s ended: %s", url, err)
        finally:
            await subscriber.close()
            # The demuxer hands over what it holds and ends; its last units were scheduled on this loop
            # before the join returns, so the end marker queues after them.
            demuxer.end_of_input()
            await asyncio.to_thread(demuxer.join, 5.0)
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
