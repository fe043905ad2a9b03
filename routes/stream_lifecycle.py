"""Restart and dismiss a stream (the sidebar's card buttons; any client may use them).

* ``POST /stream/{id}/restart``: stop the stream if it runs, start it again with the same config (id,
  subscribe/publish URLs, workflow, params): 200 ``{status, message, request_id, config, state}`` like a
  start; 404 unknown id, 409 when a concurrent start/restart of that id won, 400 when the workflow no
  longer validates (e.g. a model was removed), 429 at the stream limit.
* ``DELETE /stream/{id}``: forget a finished stream (``trickle.removed`` is sent): 200 with its final
  status; 409 while it is active (stop it first); 404 unknown id.

Same rules as the other stream routes: bearer token, JSON errors. No body, so no size rule applies; the
restarted config passed the host allowlist when the stream first started, but is checked again (the
allowlist may have changed since).
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from ..streams.config import StreamConfig
from .responses import json_errors
from .route_group import RouteGroup
from .security import HostAllowlist, requires_token
from .settings import TrickleSettings


class LifecycleRegistry(Protocol):
    def config(self, stream_id: str) -> StreamConfig:
        """The config the stream was started with; ``StreamNotFound`` when unknown."""
        ...

    async def restart(self, stream_id: str) -> dict[str, Any]:
        ...

    def forget(self, stream_id: str) -> dict[str, Any]:
        ...


class StreamLifecycleRoutes(RouteGroup):
    def __init__(self, registry: LifecycleRegistry, settings: TrickleSettings | None = None) -> None:
        self.registry = registry
        self.settings = settings or TrickleSettings.from_env()
        self.allowlist = HostAllowlist(self.settings.allowed_hosts)

    def setup_routes(self, routes: web.RouteTableDef) -> None:
        routes.post("/stream/{stream_id}/restart")(self.restart)
        routes.delete("/stream/{stream_id}")(self.dismiss)

    @json_errors
    @requires_token
    async def restart(self, request: web.Request) -> web.Response:
        stream_id = request.match_info["stream_id"]
        config = self.registry.config(stream_id)
        self.allowlist.check_urls(config.trickle_urls())
        status = await self.registry.restart(stream_id)
        return web.json_response({
            "status": "success",
            "message": f"Stream {stream_id} restarted",
            "request_id": stream_id,
            "config": config.to_json(),
            "state": status.get("state"),
        })

    @json_errors
    @requires_token
    async def dismiss(self, request: web.Request) -> web.Response:
        stream_id = request.match_info["stream_id"]
        final = self.registry.forget(stream_id)
        return web.json_response({"status": "success", "message": f"Stream {stream_id} dismissed", **final})
