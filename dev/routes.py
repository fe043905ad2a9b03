"""Development conveniences on ComfyUI's own server: the trickle relay and a local test source.

With these a user without a Livepeer gateway can stream on loopback using ComfyUI's port alone:

* ``/trickle/relay/{channel}[/{seq}]``: our protocol-faithful trickle relay (channels are created on
  first publish), also under ``/api/trickle/relay/``.
* ``POST /trickle/test-source``: starts publishing the synthetic test pattern (with audio, real time) to
  a relay channel and answers the ``subscribe_url``/``publish_url`` to pass to ``/stream/start``.
  Optional JSON body ``{name, width, height, fps, duration_s, audio}``.
* ``GET /trickle/test-source``: the running test sources.
* ``DELETE /trickle/test-source/{name}``: stops one (its channel is closed, subscribers see the end).

The test-source routes honour the bearer token. The relay cannot (trickle peers, gateways included, send
no token), so with ``COMFY_TRICKLE_TOKEN`` set none of this is mounted (``host/wiring.py`` says so in
the log at start-up); ``COMFY_TRICKLE_DEV_RELAY=0`` removes it on servers reachable by others too.
Relay segments are bounded (``MAX_RELAY_SEGMENT_BYTES``, 413 above).
"""

from __future__ import annotations

import logging
import math
import re
import secrets
from typing import Any

from aiohttp import web

from ..routes.responses import json_errors
from ..routes.route_group import RouteGroup
from ..routes.security import read_json_body, requires_token
from ..routes.settings import TrickleSettings
from ..streams.errors import ApiError
from ..streams.limits import StreamLimits
from ..trickle.relay import TrickleRelay
from .test_source import TestSource, TestSourceOptions

logger = logging.getLogger(__name__)

RELAY_PREFIX = "/trickle/relay/"
MAX_TEST_SOURCES = 4
MAX_TEST_SOURCE_FPS = 60.0
MAX_TEST_SOURCE_DURATION_S = 24 * 3600.0
CHANNEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
OUTPUT_SUFFIX = "-out"
TS_MIME_TYPE = "video/MP2T"
# One trickle segment (about a second of video) is far below this; a larger POST is cut with 413, so
# anyone who can reach the relay cannot fill the server's memory with one request.
MAX_RELAY_SEGMENT_BYTES = 8 * 1024 * 1024


class DevRoutes(RouteGroup):
    """The relay mounted under ``/trickle/relay/`` plus the test-source routes that publish into it."""

    def __init__(self, settings: TrickleSettings | None = None, relay: TrickleRelay | None = None) -> None:
        self.settings = settings or TrickleSettings.from_env()
        self.relay = relay or TrickleRelay(autocreate=True, max_segment_bytes=MAX_RELAY_SEGMENT_BYTES)
        self.sources: dict[str, TestSource] = {}

    def setup_routes(self, routes: web.RouteTableDef) -> None:
        """Register the relay and the test-source routes on ``routes``."""
        self.relay.add_routes(routes, prefix=RELAY_PREFIX)
        routes.post("/trickle/test-source")(self.start_test_source)
        routes.get("/trickle/test-source")(self.list_test_sources)
        routes.delete("/trickle/test-source/{name}")(self.stop_test_source)
        # Imported here, not at the top: both use this module's channel rules (no import cycle).
        from .camera import CameraRoutes
        from .player import PlayerRoutes

        self.camera = CameraRoutes(self)
        self.camera.setup_routes(routes)
        self.player = PlayerRoutes(self)
        self.player.setup_routes(routes)

    def attach_lifecycle(self, app: web.Application) -> None:
        """Run the relay's sweeper with ``app`` and stop every test source when it shuts down."""
        self.relay.attach_lifecycle(app)

        async def stop_sources(_: web.Application) -> None:
            await self.stop_all()

        app.on_shutdown.insert(0, stop_sources)

    def get_app(self) -> web.Application:
        app = super().get_app()
        self.attach_lifecycle(app)
        return app

    async def stop_all(self) -> None:
        """Stop every test source (idempotent)."""
        sources, self.sources = list(self.sources.values()), {}
        for source in sources:
            await source.stop()

    @json_errors
    @requires_token
    async def start_test_source(self, request: web.Request) -> web.Response:
        """Start publishing the synthetic source into relay channel ``name``."""
        body: Any = {}
        if request.content_length or request.headers.get("Transfer-Encoding"):
            body = await read_json_body(request, self.settings.limits.max_request_bytes)
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        self._forget_finished()
        name = _channel_name(body.get("name"))
        if name in self.sources:
            raise ApiError(409, f"Test source {name} is already running", {"name": name})
        if len(self.sources) >= MAX_TEST_SOURCES:
            raise ApiError(429, f"At most {MAX_TEST_SOURCES} test sources run at once")
        options = _options(body, self.settings.limits)

        # Both channels exist before we answer, so a stream started right away finds its input (the
        # first segment may still be encoding) and a viewer can already wait on the output.
        self.relay.create_channel(name, TS_MIME_TYPE)
        self.relay.create_channel(name + OUTPUT_SUFFIX, TS_MIME_TYPE)
        base = self.relay_base_url(request)
        source = TestSource(base + name, options)
        await source.start()
        self.sources[name] = source
        logger.info("comfy-trickle: test source %s publishing to %s", name, base + name)
        return web.json_response(
            {
                "name": name,
                "subscribe_url": base + name,
                "publish_url": base + name + OUTPUT_SUFFIX,
                **source.describe(),
            }
        )

    @json_errors
    @requires_token
    async def list_test_sources(self, request: web.Request) -> web.Response:
        """The test sources still running."""
        self._forget_finished()
        return web.json_response({"sources": {name: src.describe() for name, src in self.sources.items()}})

    @json_errors
    @requires_token
    async def stop_test_source(self, request: web.Request) -> web.Response:
        """Stop a test source; its channel is closed so subscribers see the end of the stream."""
        name = request.match_info["name"]
        source = self.sources.pop(name, None)
        if source is None:
            raise ApiError(404, f"Test source {name} not found", {"name": name})
        await source.stop()
        return web.json_response({"name": name, "stopped": True, **source.describe()})

    def relay_base_url(self, request: web.Request) -> str:
        """``http://127.0.0.1:<port>/trickle/relay/``: how this server reaches its own relay.

        Loopback rather than the Host header: the stream session runs inside this server, loopback is
        on the default host allowlist, and a Host header is whatever the client chose to send.
        """
        port = None
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            port = sockname[1]
        if port is None:
            port = request.url.port
        return f"{request.scheme}://127.0.0.1:{port}{RELAY_PREFIX}"

    def _forget_finished(self) -> None:
        for name in [name for name, source in self.sources.items() if source.finished]:
            del self.sources[name]


def _channel_name(value: Any) -> str:
    if value in (None, ""):
        return f"test-{secrets.token_hex(4)}"
    if not isinstance(value, str) or not CHANNEL_NAME_PATTERN.match(value) or value.endswith(OUTPUT_SUFFIX):
        raise ApiError(
            400,
            "Field name must be 1-64 letters, digits, '.', '_' or '-', start with a letter or digit "
            f"and not end in {OUTPUT_SUFFIX!r}",
            {"field": "name"},
        )
    return value


def _options(body: dict[str, Any], limits: StreamLimits) -> TestSourceOptions:
    defaults = TestSourceOptions()
    low, high = limits.min_dimension, limits.max_dimension
    width = _number(body, "width", defaults.width, low, high, integer=True)
    height = _number(body, "height", defaults.height, low, high, integer=True)
    if width % 2 or height % 2:
        raise ApiError(400, "Fields width and height must be even (H.264 4:2:0)", {"field": "width"})
    fps = _number(body, "fps", defaults.fps, 1.0, MAX_TEST_SOURCE_FPS)
    duration = body.get("duration_s")
    duration_s = None
    if duration is not None:
        duration_s = _number(body, "duration_s", 0.0, 0.1, MAX_TEST_SOURCE_DURATION_S)
    audio = body.get("audio", defaults.audio)
    if not isinstance(audio, bool):
        raise ApiError(400, "Field audio must be true or false", {"field": "audio"})
    return TestSourceOptions(
        width=int(width), height=int(height), fps=fps, duration_s=duration_s, audio=audio
    )


def _number(
    body: dict[str, Any], name: str, default: float, low: float, high: float, integer: bool = False
) -> float:
    value = body.get(name)
    if value is None:
        return default
    # Python's json accepts NaN and Infinity (and 1e400 overflows to inf); int() of those raises.
    finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if isinstance(value, bool) or not finite or (integer and value != int(value)):
        kind = "an integer" if integer else "a number"
        raise ApiError(400, f"Field {name} must be {kind}, got {value!r}", {"field": name})
    if not low <= value <= high:
        raise ApiError(
            400, f"Field {name} must be between {low:g} and {high:g}, got {value}", {"field": name}
        )
    return value
