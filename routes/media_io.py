"""Media in and out for any producer and any player: MPEG-TS over plain HTTP, bridged to trickle.

* ``POST /stream/push?url=<trickle URL>`` or ``?channel=<dev relay channel>``: one long (chunked)
  MPEG-TS body, cut at keyframes into the trickle channel; 200 ``{url, segments, bytes, seconds}`` when
  the body ends (the channel is then closed: a stream reading it completes).
* ``GET /stream/watch?url=<trickle URL>`` or ``?channel=<dev relay channel>``: the channel as one
  continuous MPEG-TS response (``video/MP2T``) until it ends.
* ``GET /stream/{id}/watch``: the output (``publish_url``) of stream ``id`` the same way.

The same rules as the stream routes: the bearer token (``requires_token``), the trickle host allowlist
(403) and JSON 4xx errors. A push is a stream, so its size rule is a rate (``StreamLimits``:
``max_push_bytes_per_s``, reading waits above it; ``max_push_segment_bytes`` per keyframe interval, 413)
with no bound on duration; at most ``max_media_connections`` pushes and as many watches at once (429).
``channel=`` names a channel of the dev relay on this server (400 when the dev relay is off); any other
trickle server is reached with ``url=``.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol

from aiohttp import web

from ..streams.errors import ApiError
from ..streams.ts_push import TS_MIME_TYPE, push_ts
from ..streams.ts_watch import ChannelWatch
from .responses import json_errors
from .route_group import RouteGroup
from .security import HostAllowlist, requires_token
from .settings import TrickleSettings

logger = logging.getLogger(__name__)

DEV_RELAY_PREFIX = "/trickle/relay/"
CHANNEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CHUNK_BYTES = 64 * 1024


class StreamStatusSource(Protocol):
    def status(self, stream_id: str) -> dict[str, Any]:
        """The stream's status object (``config.publish_url``); ``StreamNotFound`` when unknown."""
        ...


class MediaIORoutes(RouteGroup):
    """The push and watch routes (see the module docstring)."""

    def __init__(self, registry: StreamStatusSource, settings: TrickleSettings | None = None) -> None:
        self.registry = registry
        self.settings = settings or TrickleSettings.from_env()
        self.allowlist = HostAllowlist(self.settings.allowed_hosts)
        self.pushes = 0
        self.watches = 0

    def setup_routes(self, routes: web.RouteTableDef) -> None:
        routes.post("/stream/push")(self.push)
        routes.get("/stream/watch")(self.watch_channel)
        routes.get("/stream/{stream_id}/watch")(self.watch_stream)

    @json_errors
    @requires_token
    async def push(self, request: web.Request) -> web.StreamResponse:
        """Read the MPEG-TS body and publish it, a segment per keyframe interval."""
        url = self._target_url(request)
        limits = self.settings.limits
        if self.pushes >= limits.max_media_connections:
            raise ApiError(429, f"{limits.max_media_connections} pushes are already running (the limit)")
        self.pushes += 1
        try:
            logger.info("comfy-trickle: push into %s started", url)
            result = await push_ts(
                request.content.iter_chunked(CHUNK_BYTES), url,
                max_bytes_per_s=limits.max_push_bytes_per_s, max_segment_bytes=limits.max_push_segment_bytes,
            )
        finally:
            self.pushes -= 1
        logger.info("comfy-trickle: push into %s ended: %s", url, result.to_json())
        return web.json_response({"status": "success", **result.to_json()})

    @json_errors
    @requires_token
    async def watch_channel(self, request: web.Request) -> web.StreamResponse:
        return await self._watch(request, self._target_url(request))

    @json_errors
    @requires_token
    async def watch_stream(self, request: web.Request) -> web.StreamResponse:
        status = self.registry.status(request.match_info["stream_id"])
        url = str((status.get("config") or {}).get("publish_url") or "")
        self.allowlist.check_urls({"publish_url": url})
        return await self._watch(request, url)

    async def _watch(self, request: web.Request, url: str) -> web.StreamResponse:
        limits = self.settings.limits
        if self.watches >= limits.max_media_connections:
            raise ApiError(429, f"{limits.max_media_connections} watches are already running (the limit)")
        self.watches += 1
        watch = ChannelWatch(url)
        try:
            await watch.open()  # 404 / 502 as JSON before the video response starts
            response = web.StreamResponse(headers={"Content-Type": TS_MIME_TYPE, "Cache-Control": "no-store"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            try:
                async for data in watch.chunks():
                    await response.write(data)
                await response.write_eof()
            except (ConnectionResetError, ConnectionError):
                logger.info("comfy-trickle: watcher of %s left after %d segments", url, watch.segments)
            return response
        finally:
            self.watches -= 1
            await watch.close()

    def _target_url(self, request: web.Request) -> str:
        """The trickle channel URL from ``?url=`` (allowlisted) or ``?channel=`` (this server's dev relay)."""
        url = request.query.get("url", "").strip()
        channel = request.query.get("channel", "").strip()
        if bool(url) == bool(channel):
            raise ApiError(400, "Give exactly one of the query parameters url (a trickle channel URL) and "
                           "channel (a channel of this server's dev relay)", {"field": "url"})
        if channel:
            if not self.settings.dev_relay:
                raise ApiError(400, "channel= needs the dev relay (COMFY_TRICKLE_DEV_RELAY=1); give url=",
                               {"field": "channel"})
            if not CHANNEL_NAME_PATTERN.match(channel):
                raise ApiError(400, "Query parameter channel must be 1-64 letters, digits, '.', '_' or '-'",
                               {"field": "channel"})
            return _own_base_url(request) + DEV_RELAY_PREFIX + channel
        if not url.startswith(("http://", "https://")):
            raise ApiError(400, "Query parameter url must be an http(s) trickle URL", {"field": "url"})
        self.allowlist.check_urls({"url": url})
        return url


def _own_base_url(request: web.Request) -> str:
    """Loopback and the port the request came in on: how this server reaches its own relay (never the
    client-chosen Host header)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    port = sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else request.url.port
    return f"{request.scheme}://127.0.0.1:{port}"
