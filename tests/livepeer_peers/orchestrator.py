"""An orchestrator peer: go-livepeer's BYOC registration endpoint, as its source does it.

``POST /capability/register``: ``Authorization`` must equal the orchestrator secret (else 400 "invalid
authorization"); the body is an ``ExternalCapability`` JSON (``name, description, url, capacity,
price_per_unit, price_scaling, currency, token``); capabilities are kept by name, a new registration
replaces the old one (``go-livepeer:byoc/job_orchestrator.go RegisterCapability``,
``core/external_capabilities.go RegisterCapability``); 200 ``ok``. A restart forgets everything.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Registration:
    at: float
    authorization: str
    body: dict[str, Any]


@dataclass
class OrchestratorPeer:
    secret: str
    port: int
    registrations: list[Registration] = field(default_factory=list)
    capabilities: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/capability/register", self._register)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """A crash: the port closes and every capability is forgotten."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.capabilities.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _register(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        if authorization != self.secret:
            self.rejected += 1
            return web.Response(status=400, text="invalid authorization")
        try:
            body = json.loads(await request.read())
        except ValueError as err:
            return web.Response(status=400, text=f"Error registering capability: {err}")
        self.registrations.append(Registration(time.monotonic(), authorization, body))
        self.capabilities[body["name"]] = body
        return web.Response(text="ok", content_type="application/json")
