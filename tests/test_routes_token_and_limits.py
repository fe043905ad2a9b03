"""The bearer token guards every route of ours except the dev relay (trickle peers send no token), and
the limits route tells clients the bounds the server checks.

Routes are enumerated from the real applications, so a route added without ``@requires_token`` fails here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from comfy_trickle.dev.routes import RELAY_PREFIX, DevRoutes
from comfy_trickle.routes.media_io import MediaIORoutes
from comfy_trickle.routes.preview import PreviewRoutes
from comfy_trickle.routes.settings import TrickleSettings
from comfy_trickle.routes.stream_lifecycle import StreamLifecycleRoutes
from comfy_trickle.routes.streams import StreamRoutes
from comfy_trickle.streams.config import StreamConfig, parse_start_request
from comfy_trickle.streams.errors import ApiError, StreamNotFound
from comfy_trickle.streams.limits import StreamLimits

TOKEN = "s3cret"  # noqa: S105 - a test token
# A browser cannot put a header on a websocket: the camera socket takes the one-use ticket that the
# token-guarded POST /trickle/camera hands out instead, and refuses anything else with 403.
TICKET_ROUTES = {("GET", "/trickle/camera/x/socket")}


class NoStreams:
    """A registry and preview source that knows no stream (the routes under test never reach it)."""

    async def start(self, config):
        raise AssertionError("an unauthorised request reached the registry")

    async def stop(self, stream_id):
        raise StreamNotFound(stream_id)

    def status(self, stream_id):
        raise StreamNotFound(stream_id)

    def statuses(self):
        return {}

    def latest_output(self, stream_id):
        raise StreamNotFound(stream_id)

    async def update(self, stream_id, params, *, snapshot=False, limits=None):
        raise StreamNotFound(stream_id)

    def running_ids(self):
        return []


def guarded_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) of every route of ``app`` but HEAD and the relay, placeholders filled in."""
    found = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or path.startswith(RELAY_PREFIX):
            continue
        for placeholder in ("{stream_id}", "{name}", "{channel}"):
            path = path.replace(placeholder, "x")
        found.append((route.method, path))
    return found


def app_of(kind: str, settings: TrickleSettings) -> web.Application:
    if kind == "streams":
        return StreamRoutes(NoStreams(), settings).get_app()
    if kind == "dev":
        return DevRoutes(settings).get_app()
    if kind == "media_io":
        return MediaIORoutes(NoStreams(), settings).get_app()
    if kind == "lifecycle":
        return StreamLifecycleRoutes(NoStreams(), settings).get_app()
    return PreviewRoutes(NoStreams(), settings).get_app()


@pytest.mark.parametrize("kind", ["streams", "dev", "preview", "media_io", "lifecycle"])
async def test_every_route_answers_401_without_the_token(kind):
    app = app_of(kind, TrickleSettings(token=TOKEN))
    routes = guarded_routes(app)
    assert routes, kind
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        for method, path in routes:
            if (method, path) in TICKET_ROUTES:
                resp = await client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
                assert resp.status == 403, (method, path)  # no ticket, token or not
                continue
            wrong = {"Authorization": "Bearer no"}
            for headers, error in (({}, "Missing bearer token"), (wrong, "Invalid bearer token")):
                resp = await client.request(method, path, json={}, headers=headers)
                assert resp.status == 401, (method, path)
                assert resp.headers["WWW-Authenticate"] == 'Bearer realm="comfy-trickle"'
                assert await resp.json() == {"error": error}
            # With the token the request gets past the guard (whatever the route then answers).
            resp = await client.request(method, path, json={}, headers={"Authorization": f"Bearer {TOKEN}"})
            assert resp.status != 401, (method, path)
    finally:
        await client.close()


async def test_the_listed_routes_include_every_stream_and_test_source_route():
    listed = guarded_routes(StreamRoutes(NoStreams(), TrickleSettings()).get_app())
    listed += guarded_routes(DevRoutes(TrickleSettings()).get_app())
    listed += guarded_routes(PreviewRoutes(NoStreams(), TrickleSettings()).get_app())
    listed += guarded_routes(MediaIORoutes(NoStreams(), TrickleSettings()).get_app())
    listed += guarded_routes(StreamLifecycleRoutes(NoStreams(), TrickleSettings()).get_app())
    assert sorted(listed) == sorted(
        [
            ("POST", "/stream/start"),
            ("POST", "/live-video-to-video"),
            ("POST", "/stream/x/stop"),
            ("GET", "/stream/x/status"),
            ("GET", "/streams"),
            ("GET", "/stream/limits"),
            ("POST", "/stream/x/update"),
            ("POST", "/stream/params"),
            ("POST", "/trickle/test-source"),
            ("GET", "/trickle/test-source"),
            ("DELETE", "/trickle/test-source/x"),
            ("GET", "/trickle/preview/x.jpg"),
            ("POST", "/trickle/camera"),
            ("GET", "/trickle/camera/x/socket"),
            ("GET", "/trickle/player/x"),
            ("POST", "/stream/push"),
            ("GET", "/stream/watch"),
            ("GET", "/stream/x/watch"),
            ("POST", "/stream/x/restart"),
            ("DELETE", "/stream/x"),
        ]
    )


async def test_limits_route_answers_the_limits_the_server_checks():
    limits = StreamLimits(max_request_bytes=2048, max_streams=3)
    client = TestClient(TestServer(StreamRoutes(NoStreams(), TrickleSettings(limits=limits)).get_app()))
    await client.start_server()
    try:
        resp = await client.get("/stream/limits")
        assert resp.status == 200
        answer = await resp.json()
    finally:
        await client.close()
    assert answer == {
        "min_dimension": 64,
        "max_dimension": 2048,
        "dimension_multiple": 8,
        "default_dimension": 512,
        "min_backlog_s": 0.05,
        "max_backlog_s": 120.0,
        "default_backlog_s": 1.0,
        "max_request_bytes": 2048,
        "max_streams": 3,
        "max_push_bytes_per_s": 8 * 1024 * 1024,
        "max_push_segment_bytes": 32 * 1024 * 1024,
        "max_media_connections": 16,
        "default_input_wait_s": 30.0,
        "max_input_wait_s": 600.0,
        "max_workflow_nodes": 1000,
        "max_frames_per_prompt": 16,
        "min_first_frame_timeout_s": 1.0,
        "default_first_frame_timeout_s": 300.0,
        "max_first_frame_timeout_s": 3600.0,
        "min_lateness_s": 0.01,
        "default_lateness_s": 0.1,
        "max_lateness_s": 120.0,
    }
    # The published bounds are the ones parsing enforces: the edges pass, one step beyond fails.
    published = StreamLimits(**answer)
    body = {
        "subscribe_url": "http://127.0.0.1:9/in",
        "publish_url": "http://127.0.0.1:9/out",
        "gateway_request_id": "s",
        "params": {"prompt": json.dumps({"1": {"class_type": "X", "inputs": {}}})},
    }

    def check(param: str, value: int, ok: bool, read: Callable[[StreamConfig], int]) -> None:
        """An accepted ``value`` reads back through ``read``; a refused one answers 400 naming the field."""
        request = {**body, "params": {**body["params"], param: value}}
        if ok:
            assert read(parse_start_request(request, published)) == value
            return
        with pytest.raises(ApiError) as info:
            parse_start_request(request, published)
        assert info.value.body()["field"] == f"params.{param}"

    for width, ok in (
        (published.min_dimension, True),
        (published.max_dimension, True),
        (published.min_dimension - published.dimension_multiple, False),
        (published.max_dimension + published.dimension_multiple, False),
        (published.min_dimension + published.dimension_multiple // 2, False),
    ):
        check("width", width, ok, lambda config: config.width)
    most = published.max_frames_per_prompt
    for frames, ok in ((1, True), (most, True), (most + 1, False)):
        check("max_frames_per_prompt", frames, ok, lambda config: config.frames_per_prompt)
    low, high = published.min_first_frame_timeout_s, published.max_first_frame_timeout_s
    for seconds, ok in ((low, True), (high, True), (low - 0.5, False), (high + 1, False)):
        check("first_frame_timeout_s", seconds, ok, lambda config: config.first_frame_timeout_s)
    low, high = published.min_lateness_s, published.max_lateness_s
    for seconds, ok in ((low, True), (high, True), (low / 2, False), (high + 1, False)):
        check("max_lateness_s", seconds, ok, lambda config: config.max_lateness_s)


def test_web_ui_fallback_limits_are_the_servers_defaults():
    """The settings dialog and the Go live form before ``GET /stream/limits`` answers use
    ``web/js/common/limits.js``'s FALLBACK_LIMITS: they must be the numbers the server checks."""
    source = (Path(__file__).parent.parent / "web" / "js" / "common" / "limits.js").read_text()
    block = re.search(r"FALLBACK_LIMITS = Object\.freeze\(\{(.*?)\}\)", source, re.DOTALL)
    assert block is not None
    fallback = {name: int(value) for name, value in re.findall(r"(\w+): (\d+)", block.group(1))}
    defaults = StreamLimits()
    assert fallback == {
        "min_dimension": defaults.min_dimension,
        "max_dimension": defaults.max_dimension,
        "dimension_multiple": defaults.dimension_multiple,
    }
