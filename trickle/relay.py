"""A protocol-faithful trickle relay (server) on aiohttp, for development, tests and demos.

Behaviour follows go-livepeer's ``trickle/trickle_server.go`` as written up in trickle-protocol.md
(section A). Deliberate deviations, all documented there:

* ``GET {c}/{s}`` with ``s < -2`` and ``DELETE {c}/{s}`` with ``s < 0`` answer 400 (Go panics).
* A POST whose body breaks after its first byte closes its segment, so readers do not hang (Go leaves it
  open until the slot is reused).
* No ``100 Continue`` keepalives while a POST waits for its first byte (a Go-ism clients don't need).

Use it standalone (``python -m comfy_trickle.trickle serve``), in tests (``relay_server.serve_relay``), or
mounted on another aiohttp router under a prefix::

    relay = TrickleRelay(autocreate=True)
    relay.add_routes(app.router, prefix="/trickle/relay/")   # or a web.RouteTableDef
    relay.attach_lifecycle(app)                              # optional: sweeper + close on shutdown
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from .protocol import (
    CLOSED_HEADER,
    CLOSED_VALUE,
    DEFAULT_MIME_TYPE,
    EXPECT_CONTENT_HEADER,
    LATEST_HEADER,
    RESET_HEADER,
    SEQ_HEADER,
    STATUS_SEQ_UNAVAILABLE,
)
from .relay_io import receive_segment, stream_segment
from .relay_state import Channel, ChannelRegistry, Clock

logger = logging.getLogger(__name__)

CHANGEFEED_CHANNEL = "_changes"

Hook = Callable[[web.Request, str], Awaitable[None] | None]


class RelayRequestError(Exception):
    """Raised by a hook to refuse a create/delete with an HTTP status (4xx passes through, else 400)."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message or f"refused with {status}")
        self.status = status
        self.message = message or f"refused with {status}"


class _HookRefused(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.text)
        self.response = response


def _parse_seq(raw: str) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None


class TrickleRelay:
    """The relay: a channel registry plus aiohttp handlers. One instance per server; no global state.

    Args:
        autocreate: create unknown channels on ``POST {c}`` and ``POST {c}/{s}`` (Go default: off).
        idle_timeout_s: channels without a write for this long are closed by the sweeper.
        sweep_interval_s: how often the sweeper runs.
        before_create / before_delete: optional hooks ``(request, name)`` run before HTTP creation and
            deletion; raise ``RelayRequestError`` to refuse with a status, any other error gives 500.
        changefeed: publish ``{"added": [...]}``/``{"removed": [...]}`` segments on ``_changes``.
        clock: monotonic seconds; injectable so tests can move time forward.
        disconnect_poll_s: how often a waiting GET checks whether its client went away (aiohttp does not
            cancel handlers on disconnect unless the hosting app enables ``handler_cancellation``).
    """

    def __init__(
        self,
        *,
        autocreate: bool = False,
        idle_timeout_s: float = 300.0,
        sweep_interval_s: float = 60.0,
        before_create: Hook | None = None,
        before_delete: Hook | None = None,
        changefeed: bool = False,
        clock: Clock = time.monotonic,
        disconnect_poll_s: float = 1.0,
        max_segment_bytes: int | None = None,
    ) -> None:
        self.autocreate = autocreate
        self.idle_timeout_s = idle_timeout_s
        self.sweep_interval_s = sweep_interval_s
        self.before_create = before_create
        self.before_delete = before_delete
        self.disconnect_poll_s = disconnect_poll_s
        self.max_segment_bytes = max_segment_bytes  # a larger POST is cut and answered 413
        self.channels = ChannelRegistry(clock)
        self.active_requests = 0  # GET/POST handlers in flight; tests use it to check nothing is stuck
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        if changefeed:
            self.channels.create(CHANGEFEED_CHANNEL, "application/json")
            self.channels.on_change = self._publish_change

    # ----------------------------------------------------------------- server-side (in-process) API

    def create_channel(self, name: str, mime_type: str = DEFAULT_MIME_TYPE) -> Channel:
        """Create a channel server-side (the equivalent of Go's ``LocalPublisher.CreateChannel``)."""
        return self.channels.create(name, mime_type)

    def delete_channel(self, name: str) -> bool:
        """Close and remove a channel server-side; waiting readers and writers get end of stream."""
        return self.channels.delete(name)

    def write_segment(self, name: str, data: bytes) -> int:
        """Write one whole segment at the channel's ``next_write`` in-process; returns its seq."""
        channel = self.channels.get(name)
        if channel is None:
            raise KeyError(name)
        seq = channel.next_write
        segment = channel.segment_for_write(seq)
        channel.mark_written(seq)
        segment.close_nowait(data)  # synchronous API: readers already waiting are woken by one task
        return seq

    # ----------------------------------------------------------------- mounting and lifecycle

    def add_routes(self, router: web.UrlDispatcher | web.RouteTableDef, prefix: str = "/") -> None:
        """Register the trickle routes under ``prefix`` on an app router or a ``RouteTableDef``."""
        prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
        table: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("POST", prefix + "{channel}", self._handle_create),
            ("DELETE", prefix + "{channel}", self._handle_delete_channel),
            ("GET", prefix + "{channel}/{seq}", self._handle_get),
            ("POST", prefix + "{channel}/{seq}", self._handle_post),
            ("DELETE", prefix + "{channel}/{seq}", self._handle_delete_segment),
        ]
        for method, path, handler in table:
            if isinstance(router, web.RouteTableDef):
                router.route(method, path)(handler)
            else:
                router.add_route(method, path, handler)

    def make_app(self, prefix: str = "/") -> web.Application:
        """A standalone aiohttp application serving this relay."""
        app = web.Application()
        self.add_routes(app.router, prefix)
        self.attach_lifecycle(app)
        return app

    def attach_lifecycle(self, app: web.Application) -> None:
        """Start the sweeper with ``app`` and close every channel when it shuts down.

        Closing on ``on_shutdown`` (which runs before aiohttp waits for in-flight handlers) wakes every
        waiting GET, so shutdown is never held up by subscribers.
        """

        async def on_startup(_: web.Application) -> None:
            await self.start()

        async def on_shutdown(_: web.Application) -> None:
            await self.close()

        app.on_startup.append(on_startup)
        app.on_shutdown.append(on_shutdown)

    async def start(self) -> None:
        """Start the idle sweeper on the running loop (also started lazily by the first request)."""
        self._closed = False
        self._ensure_sweeper()

    async def close(self) -> None:
        """Stop the sweeper and close every channel. Idempotent."""
        self._closed = True
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            try:
                await sweeper
            except asyncio.CancelledError:
                pass
        self.channels.close_all()

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None and not self._closed:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop())

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            self.sweep_now()

    def sweep_now(self) -> list[str]:
        """Run one idle sweep immediately; returns the names of the channels closed."""
        return self.channels.sweep_idle(self.idle_timeout_s)

    def _publish_change(self, name: str, added: bool) -> None:
        if name == CHANGEFEED_CHANNEL or CHANGEFEED_CHANNEL not in self.channels:
            return
        body = json.dumps({"added" if added else "removed": [name]}).encode()
        self.write_segment(CHANGEFEED_CHANNEL, body)

    # ----------------------------------------------------------------- handlers

    async def _run_hook(self, hook: Hook | None, request: web.Request, name: str) -> None:
        if hook is None:
            return
        try:
            result = hook(request, name)
            if inspect.isawaitable(result):
                await result
        except RelayRequestError as err:
            status = err.status if 400 <= err.status < 500 else 400
            raise _HookRefused(web.Response(status=status, text=err.message)) from err
        except Exception as err:  # a broken hook must not create/delete anything
            logger.warning("trickle relay: hook failed for %s: %s", name, err)
            raise _HookRefused(web.Response(status=500, text="Hook error")) from err

    async def _handle_create(self, request: web.Request) -> web.StreamResponse:
        self._ensure_sweeper()
        name = request.match_info["channel"]
        if name in self.channels:
            return web.Response(status=200)
        if not self.autocreate:
            return web.Response(status=404, text="Stream not found")
        try:
            await self._run_hook(self.before_create, request, name)
        except _HookRefused as refused:
            return refused.response
        self.channels.create(name, request.headers.get(EXPECT_CONTENT_HEADER, DEFAULT_MIME_TYPE))
        return web.Response(status=200)

    async def _handle_delete_channel(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["channel"]
        if name not in self.channels:
            return web.Response(status=400, text="Invalid stream")
        try:
            await self._run_hook(self.before_delete, request, name)
        except _HookRefused as refused:
            return refused.response
        self.channels.delete(name)
        return web.Response(status=200)

    async def _handle_delete_segment(self, request: web.Request) -> web.StreamResponse:
        channel = self.channels.get(request.match_info["channel"])
        if channel is None:
            return web.Response(status=404, text="Stream not found")
        seq = _parse_seq(request.match_info["seq"])
        if seq is None or seq < 0:
            return web.Response(status=400, text="Invalid idx")
        segment = channel.segment_in_slot(seq)
        if segment is None:
            return web.Response(status=400, text="Nonexistent segment")
        await segment.close()
        return web.Response(status=200)

    async def _handle_get(self, request: web.Request) -> web.StreamResponse:
        self._ensure_sweeper()
        channel = self.channels.get(request.match_info["channel"])
        if channel is None:
            return web.Response(status=404, text="Stream not found")
        raw_seq = request.match_info["seq"]
        if raw_seq == "next":
            headers = {LATEST_HEADER: str(channel.next_write)}
            if channel.closed:
                headers[CLOSED_HEADER] = CLOSED_VALUE
            return web.Response(status=200, text=str(channel.next_write), headers=headers)
        seq = _parse_seq(raw_seq)
        if seq is None or seq < -2:
            return web.Response(status=400, text="Invalid idx")
        latest = channel.next_write
        seq = channel.resolve_read_seq(seq)
        segment = channel.segment_for_read(seq)
        if segment is None:
            headers = {LATEST_HEADER: str(latest), SEQ_HEADER: str(seq)}
            if channel.closed:
                headers[CLOSED_HEADER] = CLOSED_VALUE
                return web.Response(status=200, text="Entry not found", headers=headers)
            return web.Response(
                status=STATUS_SEQ_UNAVAILABLE,
                reason="Seq Unavailable",
                text="Entry not found",
                headers=headers,
            )
        self.active_requests += 1
        try:
            return await stream_segment(request, channel, segment, latest, self.disconnect_poll_s)
        finally:
            self.active_requests -= 1

    async def _handle_post(self, request: web.Request) -> web.StreamResponse:
        self._ensure_sweeper()
        name = request.match_info["channel"]
        channel = self.channels.get(name)
        if channel is None:
            if not self.autocreate:
                response = web.Response(status=404, text="Stream not found")
                response.force_close()  # wakes Go-style preconnected publishers
                return response
            try:
                await self._run_hook(self.before_create, request, name)
            except _HookRefused as refused:
                return refused.response
            channel = self.channels.create(name, request.headers.get("Content-Type", DEFAULT_MIME_TYPE))
        seq = _parse_seq(request.match_info["seq"])
        if seq is None or seq < -1:
            return web.Response(status=400, text="Invalid idx")
        if seq == -1:
            seq = channel.next_write
        segment = channel.segment_for_write(seq)
        if RESET_HEADER in request.headers:
            await channel.reset_before(seq)
        self.active_requests += 1
        try:
            return await receive_segment(request, channel, segment, self.max_segment_bytes)
        finally:
            self.active_requests -= 1
