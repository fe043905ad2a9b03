"""Wire the Livepeer worker into ComfyUI's server: its routes, the start hooks, the watch task and the
orchestrator registration (``ORCH_URL`` + ``ORCH_SECRET``), started on the app's startup and stopped on
its shutdown. ComfyUI objects come in as arguments; nothing here imports ComfyUI."""

from __future__ import annotations

import logging
import os
from typing import Any

from ..livepeer.events import DEFAULT_STATUS_INTERVAL_S
from ..livepeer.registration import Registrar, RegistrationSettings
from ..livepeer.worker import LivepeerWorker
from ..routes.livepeer import LivepeerRoutes
from ..routes.settings import TrickleSettings
from ..streams.registry import StreamRegistry

logger = logging.getLogger(__name__)

ENV_STATUS_INTERVAL = "COMFY_TRICKLE_STATUS_INTERVAL_S"


class LivepeerWiring:
    def __init__(self, server: Any, registry: StreamRegistry, settings: TrickleSettings) -> None:
        self.server = server
        interval = float(os.environ.get(ENV_STATUS_INTERVAL, "") or DEFAULT_STATUS_INTERVAL_S)
        self.worker = LivepeerWorker(registry, status_interval_s=interval)
        self.registration = RegistrationSettings.from_env(token=settings.token)
        os.environ.pop("ORCH_SECRET", None)  # as comfystream's BYOC worker: nothing else reads it
        model_id = self.registration.name if self.registration else os.environ.get("CAPABILITY_NAME", "")
        self.routes = LivepeerRoutes(self.worker, settings, model_id=model_id or "comfyui")
        self.registrar: Registrar | None = None

    @property
    def start_hooks(self) -> Any:
        return self.routes.start_hooks

    def attach(self, app: Any) -> None:
        """Start with the app (``close`` runs from the wiring's one shutdown hook, after the streams)."""
        app.on_startup.append(self._startup)

    def _own_url(self) -> str:
        port = getattr(self.server, "port", None)
        address = getattr(self.server, "address", None) or "127.0.0.1"
        if address in ("0.0.0.0", "::"):  # noqa: S104 - a wildcard listen address: register loopback
            address = "127.0.0.1"
        return f"http://{address}:{port}" if port else ""

    async def _startup(self, _app: Any) -> None:
        self.worker.start()
        if self.registration is not None:
            self.registrar = Registrar(self.registration, self.worker.free_slots, self._own_url)
            self.worker.capacity_listeners.append(self.registrar.capacity_changed)
            self.registrar.start()
            logger.info("comfy-trickle: registering with the orchestrator at %s as %r",
                        self.registration.orch_url, self.registration.name)

    async def close(self) -> None:
        if self.registrar is not None:
            await self.registrar.close()
        await self.worker.close()
