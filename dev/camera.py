"""Browser camera ingest: WebCodecs H.264 over a websocket, muxed into MPEG-TS trickle segments.

* ``POST /trickle/camera`` (bearer token) with ``{name?, width, height, fps?}`` creates the relay channels
  ``name`` and ``name-out`` (``audio_channels``: 1 or 2 when the socket will also carry Opus sound) and
  answers ``subscribe_url``/``publish_url`` for ``/stream/start`` plus a
  ``socket_path`` holding a one-use ticket (browsers cannot put an Authorization header on a websocket, so
  the token-guarded POST hands out the ticket and the socket checks it; it expires after 30 s).
* ``GET /trickle/camera/{name}/socket?ticket=...``: the websocket. Each binary message is one frame:
  1 byte flags, 8 bytes big-endian timestamp in microseconds, then either an H.264 access unit (Annex B;
  flag bit 0: keyframe), muxed without re-encoding, each keyframe starting a new trickle segment; or, with
  flag bit 1, a JPEG still (the fallback for browsers without a WebCodecs H.264 encoder), encoded here with
  libx264 (``media/jpeg_to_ts.py``); or, with flag bit 2, one Opus packet (48 kHz, as WebCodecs'
  ``AudioEncoder`` produced it), muxed without re-encoding as the segments' Opus track on the video's clock
  (the JPEG path carries no sound). Closing the socket closes the channel (the stream ends).

Bounds: at most ``MAX_CAMERAS`` at once (429), a message at most ``MAX_UNIT_BYTES`` and at most
``MAX_UNITS_PER_S`` messages a second, video and sound together (the socket is closed with a reason beyond
either).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from ..media.jpeg_to_ts import JpegToTs
from ..media.ts_mux import AccessUnitMuxer, MuxedBytes
from ..routes.responses import json_errors
from ..routes.security import read_json_body, requires_token
from ..streams.errors import ApiError
from ..trickle.errors import TrickleError
from ..trickle.publisher import PublishedSegment, TricklePublisher

if TYPE_CHECKING:
    from .routes import DevRoutes

logger = logging.getLogger(__name__)

MAX_CAMERAS = 4
MAX_CAMERA_FPS = 60.0
MAX_UNIT_BYTES = 4 * 1024 * 1024
MAX_AUDIO_PACKETS_PER_S = 50.0  # Opus in 20 ms frames
# A burst after a stall is fine, a flood is not.
MAX_UNITS_PER_S = 2 * (MAX_CAMERA_FPS + MAX_AUDIO_PACKETS_PER_S)
TICKET_TTL_S = 30.0
UNIT_HEADER = struct.Struct(">BQ")
KEYFRAME_FLAG = 0x01
JPEG_FLAG = 0x02
AUDIO_FLAG = 0x04
POLICY_VIOLATION = 1008  # websocket close code: the peer broke the message rules


@dataclass
class CameraIngest:
    """One camera channel: its ticket until the socket connects, then its socket's counters."""

    name: str
    channel_url: str
    width: int
    height: int
    audio_channels: int
    ticket: str
    ticket_expires: float
    connected: bool = False
    units_in: int = 0
    segments: int = 0
    finished: bool = False
    _recent: list[float] = field(default_factory=list)

    def over_rate(self, now: float) -> bool:
        """True when more than MAX_UNITS_PER_S messages arrived within the last second."""
        self._recent = [stamp for stamp in self._recent if now - stamp < 1.0]
        self._recent.append(now)
        return len(self._recent) > MAX_UNITS_PER_S


class CameraRoutes:
    """The camera ingest routes of one ``DevRoutes`` (its relay, settings and channel rules)."""

    def __init__(self, dev: DevRoutes) -> None:
        self.dev = dev
        self.settings = dev.settings
        self.cameras: dict[str, CameraIngest] = {}

    def setup_routes(self, routes: web.RouteTableDef) -> None:
        routes.post("/trickle/camera")(self.open_camera)
        routes.get("/trickle/camera/{name}/socket")(self.camera_socket)

    @json_errors
    @requires_token
    async def open_camera(self, request: web.Request) -> web.Response:
        """Create the camera's channels and a ticket for its websocket."""
        from .routes import OUTPUT_SUFFIX, TS_MIME_TYPE, _channel_name, _number

        body = await read_json_body(request, self.settings.limits.max_request_bytes)
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        self._forget_stale()
        name = _channel_name(body.get("name"))
        if name in self.cameras or name in self.dev.relay.channels:
            raise ApiError(409, f"Channel {name} is already in use", {"name": name})
        if len(self.cameras) >= MAX_CAMERAS:
            raise ApiError(429, f"At most {MAX_CAMERAS} cameras stream at once")
        limits = self.settings.limits
        width = int(_number(body, "width", 0, limits.min_dimension, limits.max_dimension, integer=True))
        height = int(_number(body, "height", 0, limits.min_dimension, limits.max_dimension, integer=True))
        if "width" not in body or "height" not in body:
            raise ApiError(
                400, "Fields width and height are required (the encoded camera size)", {"field": "width"}
            )
        if width % 2 or height % 2:
            raise ApiError(400, "Fields width and height must be even (H.264 4:2:0)", {"field": "width"})
        audio_channels = body.get("audio_channels", 0)
        if audio_channels not in (0, 1, 2) or isinstance(audio_channels, bool):
            raise ApiError(
                400, "Field audio_channels must be 0 (no sound), 1 or 2 (Opus)", {"field": "audio_channels"}
            )
        self.dev.relay.create_channel(name, TS_MIME_TYPE)
        self.dev.relay.create_channel(name + OUTPUT_SUFFIX, TS_MIME_TYPE)
        base = self.dev.relay_base_url(request)
        ticket = secrets.token_urlsafe(24)
        self.cameras[name] = CameraIngest(
            name, base + name, width, height, audio_channels, ticket, time.monotonic() + TICKET_TTL_S
        )
        return web.json_response({
            "name": name,
            "subscribe_url": base + name,
            "publish_url": base + name + OUTPUT_SUFFIX,
            "socket_path": f"/trickle/camera/{name}/socket?ticket={ticket}",
            "max_fps": MAX_CAMERA_FPS,
            "max_unit_bytes": MAX_UNIT_BYTES,
        })  # fmt: skip

    @json_errors
    async def camera_socket(self, request: web.Request) -> web.StreamResponse:
        """The camera's websocket: access units in, TS segments out to the relay channel."""
        name = request.match_info["name"]
        camera = self.cameras.get(name)
        given = request.query.get("ticket", "")
        if camera is None or camera.connected or not secrets.compare_digest(given, camera.ticket):
            raise ApiError(403, "Unknown or used camera ticket: POST /trickle/camera first", {"name": name})
        if time.monotonic() > camera.ticket_expires:
            self._release(camera)
            raise ApiError(403, "The camera ticket expired: POST /trickle/camera again", {"name": name})
        camera.connected = True
        socket = web.WebSocketResponse(max_msg_size=MAX_UNIT_BYTES + UNIT_HEADER.size, heartbeat=20.0)
        await socket.prepare(request)
        try:
            await self._ingest(camera, socket)
        finally:
            self._release(camera)
            if not socket.closed:
                await socket.close()
        return socket

    async def _ingest(self, camera: CameraIngest, socket: web.WebSocketResponse) -> None:
        muxer = AccessUnitMuxer(camera.width, camera.height, camera.audio_channels)
        # The JPEG path's encoder (x264 is zerolatency: nothing waits in it, so it needs no flush at the end,
        # and a push still running on its thread after a cancel never meets a close).
        jpeg: JpegToTs | None = None
        publisher = TricklePublisher(camera.channel_url)
        segment: PublishedSegment | None = None
        try:
            async for message in socket:
                if message.type != WSMsgType.BINARY:
                    if message.type == WSMsgType.ERROR:
                        break
                    continue
                problem = self._check_unit(camera, message.data)
                if problem:
                    await socket.close(code=POLICY_VIOLATION, message=problem.encode()[:120])
                    break
                flags, timestamp_us = UNIT_HEADER.unpack_from(message.data)
                payload = message.data[UNIT_HEADER.size :]
                if flags & AUDIO_FLAG:
                    if not camera.audio_channels:
                        reason = b"sound sent but not declared: POST /trickle/camera with audio_channels"
                        await socket.close(code=POLICY_VIOLATION, message=reason[:120])
                        break
                    sound = muxer.push_audio(payload, timestamp_us)
                    produced = [MuxedBytes(sound, segment_start=False)] if sound and segment else []
                elif flags & JPEG_FLAG:
                    jpeg = jpeg or JpegToTs(MAX_CAMERA_FPS)
                    try:
                        produced = await asyncio.to_thread(jpeg.push, payload, timestamp_us)
                    except ValueError as err:
                        await socket.close(code=POLICY_VIOLATION, message=str(err).encode()[:120])
                        break
                else:
                    muxed = muxer.push(payload, timestamp_us, bool(flags & KEYFRAME_FLAG))
                    produced = [muxed] if muxed is not None else []
                camera.units_in += 1
                for muxed in produced:
                    segment = await self._publish(camera, publisher, segment, muxed)
        except TrickleError as err:
            logger.warning("comfy-trickle: camera %s cannot publish: %s", camera.name, err)
            await socket.close(code=1011, message=b"cannot publish to the relay channel")
        finally:
            # Shielded: aiohttp cancels the handler when the browser goes away, and the channel must still
            # end (the stream reading it sees the end) rather than wait for the relay's idle sweep.
            await asyncio.shield(self._finish(camera, muxer, publisher, segment))

    @staticmethod
    async def _publish(
        camera: CameraIngest,
        publisher: TricklePublisher,
        segment: PublishedSegment | None,
        muxed: MuxedBytes,
    ) -> PublishedSegment:
        """Write ``muxed`` to the channel, opening a new segment where it starts one; returns the segment."""
        if muxed.segment_start or segment is None:
            if segment is not None:
                if muxed.previous_tail:
                    await segment.write(muxed.previous_tail)
                await segment.close()
            segment = await publisher.open_segment()
            camera.segments += 1
        if muxed.data:
            await segment.write(muxed.data)
        return segment

    @staticmethod
    async def _finish(
        camera: CameraIngest,
        muxer: AccessUnitMuxer,
        publisher: TricklePublisher,
        segment: PublishedSegment | None,
    ) -> None:
        tail = muxer.close()
        with contextlib.suppress(Exception):
            if segment is not None:
                if tail:
                    await segment.write(tail)
                await segment.close()
        await publisher.close(delete_channel=True)
        logger.info(
            "comfy-trickle: camera %s ended after %d units (%d sound packets in, %d dropped)",
            camera.name, camera.units_in, muxer.audio_in, muxer.audio_dropped,
        )  # fmt: skip

    @staticmethod
    def _check_unit(camera: CameraIngest, data: bytes) -> str:
        if len(data) <= UNIT_HEADER.size:
            return "each message must be 9 header bytes plus an H.264 access unit, JPEG or Opus packet"
        if camera.over_rate(time.monotonic()):
            return f"more than {MAX_UNITS_PER_S:g} messages a second"
        return ""

    def _release(self, camera: CameraIngest) -> None:
        camera.finished = True
        if self.cameras.get(camera.name) is camera:
            del self.cameras[camera.name]

    def _forget_stale(self) -> None:
        """Drop tickets nobody used in time, and their channels."""
        from .routes import OUTPUT_SUFFIX

        now = time.monotonic()
        for camera in [c for c in self.cameras.values() if not c.connected and now > c.ticket_expires]:
            self._release(camera)
            self.dev.relay.delete_channel(camera.name)
            self.dev.relay.delete_channel(camera.name + OUTPUT_SUFFIX)
