"""The stream REST API on ComfyUI's server (ComfyUI mirrors every route under ``/api``).

| route | answer |
| --- | --- |
| ``POST /stream/start`` and ``/live-video-to-video`` | 200 ``{status, message, request_id, config, state}`` |
| ``POST /stream/{id}/stop`` | 200 ``{status, message, **final status object}`` |
| ``GET /stream/{id}/status`` | 200 status object |
| ``GET /streams`` | 200 ``{streams: {id: status}, count}`` |
| ``GET /stream/limits`` | 200 ``StreamLimits`` as JSON (sizes, backlog, body bytes, max streams) |
| ``POST /stream/{id}/update`` | 200 ``{status, request_id, generation, applied, config}`` (live control) |
| ``POST /stream/params`` | the same, BYOC's shape: flat params, the stream named by ``X-Stream-Id`` |

BYOC (``POST /stream/params``): go-livepeer's orchestrator forwards the gateway's update body unchanged
(flat JSON params) to the worker's ``/stream/params`` with the header ``X-Stream-Id: <stream id>`` (the
``gateway_request_id`` it started the stream with); see ``byoc/stream_orchestrator.go``,
``UpdateStream``, in livepeer/go-livepeer. Without the header the one running stream is meant (pytrickle
workers run one stream); with several running, 400.

Errors (JSON ``{"error": ..., ...}``): 400 bad input (workflow errors add ``node_errors`` in ComfyUI's
shape), 401 missing/wrong bearer token, 403 trickle host not allowed, 404 unknown id, 409 duplicate id,
413 body too large, 429 stream limit reached. Everything is checked before the registry starts anything.
Every route requires the bearer token when one is set (``requires_token``).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from aiohttp import web

from ..streams.config import StreamConfig, parse_start_request
from ..streams.errors import ApiError
from ..streams.limits import StreamLimits
from .responses import json_errors
from .route_group import RouteGroup
from .security import HostAllowlist, read_json_body, requires_token
from .settings import TrickleSettings


class StreamRegistryAPI(Protocol):
    """What the routes need from the stream engine's registry (``streams.registry.StreamRegistry``)."""

    async def start(self, config: StreamConfig) -> dict[str, Any]:
        """Validate the workflow, start the stream, return its status object. Raises ``StreamError``s."""
        ...

    async def stop(self, stream_id: str) -> dict[str, Any]:
        """Stop the stream and return its final status object; ``StreamNotFound`` when unknown."""
        ...

    def status(self, stream_id: str) -> dict[str, Any]:
        """The stream's status object; ``StreamNotFound`` when unknown."""
        ...

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Every known stream's status object by id."""
        ...

    async def update(self, stream_id: str, params: Any, *, snapshot: bool = False,
                     limits: StreamLimits | None = None) -> dict[str, Any]:
        """Live control: ``{generation, applied, config}``; 404/409/400 as ``StreamError``s."""
        ...

    def running_ids(self) -> list[str]:
        """Ids of the running streams."""
        ...


class StartHooks(Protocol):
    """Optional extra steps of a start (``routes.livepeer.LivepeerStartHooks``: BYOC bodies, events)."""

    def adapt_start_body(self, headers: Any, body: Any) -> Any:
        """The body to parse (a BYOC body mapped onto ours)."""
        ...

    def stream_started(self, config: StreamConfig, received_at: float) -> None:
        """The stream runs; ``received_at`` is when its request arrived (``time.time()``)."""
        ...


class StreamRoutes(RouteGroup):
    """Handlers of the stream REST API, bound to one registry and one set of settings.

    Production attaches them to ``PromptServer.instance.routes`` with ``setup_routes``; tests may serve
    ``get_app()`` on their own.
    """

    def __init__(
        self,
        registry: StreamRegistryAPI,
        settings: TrickleSettings | None = None,
        hooks: StartHooks | None = None,
    ) -> None:
        self.registry = registry
        self.hooks = hooks
        self.settings = settings or TrickleSettings.from_env()
        self.allowlist = HostAllowlist(self.settings.allowed_hosts)

    def setup_routes(self, routes: web.RouteTableDef) -> None:
        """Register every stream route on ``routes``."""
        routes.post("/stream/start")(self.start)
        routes.post("/live-video-to-video")(self.start)
        routes.post("/stream/{stream_id}/stop")(self.stop)
        routes.get("/stream/{stream_id}/status")(self.status)
        routes.get("/streams")(self.list_streams)
        routes.get("/stream/limits")(self.limits)
        routes.post("/stream/{stream_id}/update")(self.update)
        routes.post("/stream/params")(self.byoc_params)

    @json_errors
    @requires_token
    async def start(self, request: web.Request) -> web.Response:
        """Start a stream; every check (auth, size, body, hosts, workflow) runs before anything starts."""
        received_at = time.time()
        limits = self.settings.limits
        body = await read_json_body(request, limits.max_request_bytes)
        if self.hooks is not None:
            body = self.hooks.adapt_start_body(request.headers, body)
        config = parse_start_request(body, limits)
        self.allowlist.check_urls(config.trickle_urls())
        status = await self.registry.start(config)
        if self.hooks is not None:
            self.hooks.stream_started(config, received_at)
        return web.json_response(
            {
                "status": "success",
                "message": f"Stream {config.stream_id} started successfully",
                "request_id": config.stream_id,
                "config": config.to_json(),
                "state": status.get("state"),
            }
        )

    @json_errors
    @requires_token
    async def stop(self, request: web.Request) -> web.Response:
        """Stop a stream; answers with its final status."""
        stream_id = request.match_info["stream_id"]
        final = await self.registry.stop(stream_id)
        return web.json_response(
            {"status": "success", "message": f"Stream {stream_id} stopped successfully", **final}
        )

    @json_errors
    @requires_token
    async def status(self, request: web.Request) -> web.Response:
        """One stream's status object."""
        return web.json_response(self.registry.status(request.match_info["stream_id"]))

    @json_errors
    @requires_token
    async def list_streams(self, request: web.Request) -> web.Response:
        """Every known stream with its status."""
        statuses = self.registry.statuses()
        return web.json_response({"streams": statuses, "count": len(statuses)})

    @json_errors
    @requires_token
    async def update(self, request: web.Request) -> web.Response:
        """Live control: ``{"params": {...}}``, fields not given keep their value (``streams.updates``)."""
        stream_id = request.match_info["stream_id"]
        body = await read_json_body(request, self.settings.limits.max_request_bytes)
        if not isinstance(body, dict) or not isinstance(body.get("params"), dict):
            raise ApiError(400, 'Body must be {"params": {...}}', {"field": "params"})
        return await self._answer_update(stream_id, body["params"])

    @json_errors
    @requires_token
    async def byoc_params(self, request: web.Request) -> web.Response:
        """BYOC's update: flat params, the stream named by ``X-Stream-Id`` (see the module docstring)."""
        body = await read_json_body(request, self.settings.limits.max_request_bytes)
        if not isinstance(body, dict):
            raise ApiError(400, "Body must be a JSON object of params", {"field": "params"})
        stream_id = request.headers.get("X-Stream-Id", "")
        if not stream_id:
            running = self.registry.running_ids()
            if len(running) != 1:
                raise ApiError(400, f"Header X-Stream-Id is required ({len(running)} streams running)",
                               {"field": "X-Stream-Id"})
            stream_id = running[0]
        return await self._answer_update(stream_id, body)

    async def _answer_update(self, stream_id: str, params: dict[str, Any]) -> web.Response:
        result = await self.registry.update(stream_id, params, limits=self.settings.limits)
        return web.json_response({"status": "success", "request_id": stream_id, **result})

    @json_errors
    @requires_token
    async def limits(self, request: web.Request) -> web.Response:
        """The bounds a start request must keep, so clients (the UI's Go live form) check the same ones."""
        return web.json_response(self.settings.limits.to_json())


def register_stream_routes(
    routes: web.RouteTableDef,
    registry: StreamRegistryAPI,
    settings: TrickleSettings | None = None,
    hooks: StartHooks | None = None,
) -> StreamRoutes:
    """Attach the stream routes to ComfyUI's route table (ComfyUI mirrors them under /api)."""
    stream_routes = StreamRoutes(registry, settings, hooks)
    stream_routes.setup_routes(routes)
    return stream_routes
