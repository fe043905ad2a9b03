"""What every group of our routes shares: handlers registered by ``setup_routes`` onto ComfyUI's table, or
served alone by ``get_app`` (tests, embedding)."""

from __future__ import annotations

from aiohttp import web


class RouteGroup:
    """Subclasses register their handlers in ``setup_routes``."""

    def setup_routes(self, routes: web.RouteTableDef) -> None:
        raise NotImplementedError

    def get_app(self) -> web.Application:
        """A standalone application serving only these routes."""
        app = web.Application()
        routes = web.RouteTableDef()
        self.setup_routes(routes)
        app.add_routes(routes)
        return app
