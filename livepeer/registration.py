"""Register this worker with a go-livepeer orchestrator as a BYOC capability, capacity = free slots.

Request (``go-livepeer:byoc/job_orchestrator.go RegisterCapability``, body decoded by
``core/external_capabilities.go RegisterCapability`` into ``ExternalCapability``):
``POST {ORCH_URL}/capability/register``, header ``Authorization: <ORCH_SECRET>`` (the raw orchestrator
secret, no scheme), body ``{"name", "description", "url", "capacity", "price_per_unit", "price_scaling",
"currency", "token"}``; 200 ``ok``, 400 on a wrong secret or body. ``token`` is what the orchestrator
sends back to us as ``Authorization: Bearer <token>`` (``byoc/stream_orchestrator.go createWorkerReq``):
our ``COMFY_TRICKLE_TOKEN``. A registration replaces the capability of that name with a fresh load of 0,
so registering the *free* slots after every start/stop keeps the orchestrator's view exact.

The orchestrator forgets capabilities when it restarts and has no heartbeat, so we re-register every
``refresh_s`` as well, and retry failures with a bounded backoff. The secret is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

logger = logging.getLogger(__name__)

REFRESH_S = 30.0
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RegistrationSettings:
    orch_url: str
    secret: str
    name: str
    url: str
    description: str = ""
    price_per_unit: int = 0
    price_scaling: int = 1
    currency: str = "wei"
    token: str = ""
    refresh_s: float = REFRESH_S
    verify_tls: bool = False  # orchestrators serve self-signed certificates

    def __repr__(self) -> str:  # never print the secret
        return f"RegistrationSettings(orch_url={self.orch_url!r}, name={self.name!r}, url={self.url!r})"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, token: str = ""
    ) -> RegistrationSettings | None:
        """From ``ORCH_URL``, ``ORCH_SECRET``, ``CAPABILITY_NAME`` (default ``comfyui``),
        ``CAPABILITY_URL``, ``CAPABILITY_DESCRIPTION``, ``CAPABILITY_PRICE_PER_UNIT``,
        ``CAPABILITY_PRICE_SCALING``, ``CAPABILITY_CURRENCY``, ``ORCH_REREGISTER_S``,
        ``ORCH_VERIFY_TLS``; None unless both ORCH_URL and ORCH_SECRET are set. Without
        ``CAPABILITY_URL`` the server's own address is registered (``http://<address>:<port>``)."""
        env = os.environ if environ is None else environ
        orch_url, secret = env.get("ORCH_URL", "").strip(), env.get("ORCH_SECRET", "").strip()
        if not orch_url or not secret:
            return None
        return cls(
            orch_url=orch_url.rstrip("/"),
            secret=secret,
            name=env.get("CAPABILITY_NAME", "").strip() or "comfyui",
            url=env.get("CAPABILITY_URL", "").strip().rstrip("/"),
            description=env.get("CAPABILITY_DESCRIPTION", "ComfyUI live video (comfy-trickle)"),
            price_per_unit=int(env.get("CAPABILITY_PRICE_PER_UNIT", "0") or 0),
            price_scaling=int(env.get("CAPABILITY_PRICE_SCALING", "1") or 1),
            currency=env.get("CAPABILITY_CURRENCY", "wei").strip() or "wei",
            token=token,
            refresh_s=float(env.get("ORCH_REREGISTER_S", "") or REFRESH_S),
            verify_tls=env.get("ORCH_VERIFY_TLS", "0").strip().lower() in ("1", "true", "yes", "on"),
        )

    def body(self, capacity: int, url: str = "") -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "url": self.url or url, "capacity": capacity,
            "price_per_unit": self.price_per_unit, "price_scaling": self.price_scaling,
            "currency": self.currency, "token": self.token,
        }


class Registrar:
    """Keeps the capability registered; ``capacity_changed`` (event loop) re-registers at once."""

    def __init__(self, settings: RegistrationSettings, free_slots: Callable[[], int],
                 default_url: Callable[[], str] = lambda: "") -> None:
        self.settings = settings
        self._free_slots = free_slots
        self._default_url = default_url
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.registrations = 0
        self.failures = 0
        self.last_capacity: int | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="livepeer-registration")

    def capacity_changed(self, _free: int) -> None:
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST_S
        connector = aiohttp.TCPConnector(ssl=None if self.settings.verify_tls else False)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            while True:
                self._wake.clear()
                ok = await self._register(session)
                wait = self.settings.refresh_s if ok else backoff
                backoff = BACKOFF_FIRST_S if ok else min(backoff * 2, BACKOFF_MAX_S)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def _register(self, session: aiohttp.ClientSession) -> bool:
        capacity = self._free_slots()
        url = f"{self.settings.orch_url}/capability/register"
        own_url = self.settings.url or self._default_url()
        if not own_url:
            logger.info("livepeer: waiting for the server's address before registering")
            return False
        try:
            async with session.post(url, json=self.settings.body(capacity, own_url),
                                    headers={"Authorization": self.settings.secret}) as response:
                text = (await response.text())[:200]
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {text}")
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self.failures += 1
            logger.warning("livepeer: registering %r at %s failed: %s", self.settings.name, url,
                           str(err).replace(self.settings.secret, "***"))
            return False
        if capacity != self.last_capacity:
            logger.info("livepeer: registered %r at %s, capacity %d", self.settings.name, url, capacity)
        self.registrations += 1
        self.last_capacity = capacity
        return True
