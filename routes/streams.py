"""Stream REST API handlers."""

from __future__ import annotations

from aiohttp import web


async def list_streams(request: web.Request) -> web.Response:
    return web.json_response({"streams": {}, "count": 0})


def register_stream_routes(routes: web.RouteTableDef) -> None:
    """Attach the stream routes to ComfyUI's route table (ComfyUI mirrors them under /api)."""
    routes.get("/streams")(list_streams)
