"""Live preview of a stream's newest output frame: ``GET /trickle/preview/{stream_id}.jpg``.

Transport: a small JPEG pulled by the browser, not frames pushed over ComfyUI's websocket. Why:

* The stream never pays for it. The route reads the newest frame the egress already wrote (a reference,
  no copy) and encodes it (``media.jpeg``) on a dedicated one-thread pool, off the event loop and off
  the stream's own threads. Nobody watching costs nothing at all; a push design would encode every
  frame for every connected client whether anyone looks or not.
* N viewers cost one encode per frame. Answers are cached per (stream, width) and keyed by the frame
  object itself, and concurrent requests for a frame being encoded await the same future. A cached JPEG
  younger than ``MIN_ENCODE_INTERVAL_S`` is served even if a newer frame exists, so viewers polling out
  of step never add encodes: at most 15 per second per stream and width, however many viewers.
* Each viewer sets its own rate (the UI's ``Trickle.Preview.MaxFps``, default 5) and has at most one
  request in flight, so a slow browser never queues work on the server; ``If-None-Match`` with the
  answer's ``ETag`` gets a bodiless 304 when no new frame was written since.
* It goes through ``api.fetchApi`` like every other call of the UI, so the bearer token applies.

Answers: 200 ``image/jpeg`` (``ETag``, ``Cache-Control: no-store``, ``X-Trickle-Pts``), 304 when the
``If-None-Match`` frame is still the newest, 204 while the stream has written no frame yet (or has
ended and dropped it), 404 JSON for an unknown stream, 400 for a bad ``max_width``, 401 bad token.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from ..media.jpeg import encode_jpeg
from ..streams.errors import ApiError, StreamNotFound
from .responses import json_errors
from .route_group import RouteGroup
from .security import requires_token
from .settings import TrickleSettings

logger = logging.getLogger(__name__)

PREVIEW_ROUTE = "/trickle/preview/{stream_id}.jpg"
DEFAULT_MAX_WIDTH = 512
MIN_MAX_WIDTH = 64
MAX_MAX_WIDTH = 1920
# Widths are rounded up to this step so that viewers asking for similar sizes share cache entries.
WIDTH_STEP = 64
# The UI's highest preview rate (Trickle.Preview.MaxFps) is 15: no viewer needs fresher JPEGs than this.
MIN_ENCODE_INTERVAL_S = 1 / 15
# Entries are one JPEG each (tens of KiB); a few per stream is plenty.
MAX_CACHE_ENTRIES = 64
FIELD_MAX_WIDTH = {"field": "max_width"}


class PreviewFrameSource(Protocol):
    """What the route needs from the stream registry."""

    def latest_output(self, stream_id: str) -> tuple[Any, int] | None:
        """The stream's newest output frame as (RGB uint8 ``[H, W, 3]`` array, pts), or None.

        Raises ``StreamNotFound`` (a ``StreamError`` answering 404) for an unknown stream.
        """
        ...


@dataclass
class _CachedPreview:
    """The JPEG of one frame at one width; ``frame`` is held so its identity stays meaningful."""

    frame: tuple[Any, int]
    etag: str
    created: float
    jpeg: asyncio.Future[bytes] = field(repr=False)


class PreviewRoutes(RouteGroup):
    """The preview route bound to a frame source; ``encodes`` counts JPEG encodings (tests, bench)."""

    def __init__(
        self,
        source: PreviewFrameSource,
        settings: TrickleSettings | None = None,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.settings = settings or TrickleSettings.from_env()
        # One worker: previews never take more than one core, whatever the number of viewers and streams.
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="trickle-preview")
        self._owns_executor = executor is None
        self._cache: OrderedDict[tuple[str, int], _CachedPreview] = OrderedDict()
        self._generation = itertools.count(1)
        self._clock = clock
        self.encodes = 0

    def setup_routes(self, routes: web.RouteTableDef) -> None:
        """Register ``GET /trickle/preview/{stream_id}.jpg`` on ``routes``."""
        routes.get(PREVIEW_ROUTE)(self.preview)

    def get_app(self) -> web.Application:
        app = super().get_app()
        app.on_cleanup.append(lambda _app: self.close())
        return app

    async def close(self) -> None:
        """Drop the cache and stop the encoder thread (when this object created it)."""
        self._cache.clear()
        if self._owns_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    @json_errors
    @requires_token
    async def preview(self, request: web.Request) -> web.StreamResponse:
        """Answer the newest output frame of a stream as a JPEG (see the module docstring)."""
        stream_id = request.match_info["stream_id"]
        max_width = _max_width(request.query.get("max_width"))
        key = (stream_id, max_width)
        frame = self.source.latest_output(stream_id)  # StreamNotFound -> 404 JSON
        if frame is None:
            self._cache.pop(key, None)
            return web.Response(status=204, headers={"Cache-Control": "no-store"})
        cached = self._cached(key, frame)
        headers = {"ETag": cached.etag, "Cache-Control": "no-store", "X-Trickle-Pts": str(cached.frame[1])}
        if cached.etag in _etags(request.headers.get("If-None-Match", "")):
            return web.Response(status=304, headers=headers)
        # shield: a viewer that goes away must not cancel the encode other viewers are waiting for.
        jpeg = await asyncio.shield(cached.jpeg)
        return web.Response(body=jpeg, content_type="image/jpeg", headers=headers)

    def _cached(self, key: tuple[str, int], frame: tuple[Any, int]) -> _CachedPreview:
        cached = self._cache.get(key)
        fresh = cached is not None and self._clock() - cached.created < MIN_ENCODE_INTERVAL_S
        if cached is not None and (cached.frame is frame or fresh):
            self._cache.move_to_end(key)
            return cached
        self._drop_stale()
        rgb, _pts = frame
        loop = asyncio.get_running_loop()
        self.encodes += 1
        future = loop.run_in_executor(self._executor, encode_jpeg, rgb, key[1])
        future.add_done_callback(_log_encode_failure)
        cached = _CachedPreview(
            frame=frame, etag=f'"{next(self._generation)}"', created=self._clock(), jpeg=future
        )
        self._cache[key] = cached
        self._cache.move_to_end(key)
        while len(self._cache) > MAX_CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return cached

    def _drop_stale(self) -> None:
        """Forget entries of streams that ended or are gone, and entries whose stream has moved on to a
        newer frame once they are no longer fresh: the cache never keeps a frame alive for long after the
        stream itself has let go of it."""
        now = self._clock()
        for key, cached in list(self._cache.items()):
            try:
                current = self.source.latest_output(key[0])
            except StreamNotFound:
                current = None
            moved_on = current is not cached.frame and now - cached.created >= MIN_ENCODE_INTERVAL_S
            if current is None or moved_on:
                del self._cache[key]


def _max_width(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_MAX_WIDTH
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"max_width must be an integer, got {raw!r}", FIELD_MAX_WIDTH) from None
    if not MIN_MAX_WIDTH <= value <= MAX_MAX_WIDTH:
        message = f"max_width must be between {MIN_MAX_WIDTH} and {MAX_MAX_WIDTH}, got {value}"
        raise ApiError(400, message, FIELD_MAX_WIDTH)
    return -(-value // WIDTH_STEP) * WIDTH_STEP


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _log_encode_failure(future: asyncio.Future[bytes]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("comfy-trickle: preview encode failed: %s", future.exception())
