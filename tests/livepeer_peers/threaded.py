"""Run an ``OrchestratorPeer`` on its own event loop thread, so it outlives each test's loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .orchestrator import OrchestratorPeer


class ThreadedOrchestrator:
    def __init__(self, secret: str, port: int) -> None:
        self.peer = OrchestratorPeer(secret, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="orchestrator-peer", daemon=True)
        self._thread.start()

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def start(self) -> None:
        self._run(self.peer.start())

    def stop(self) -> None:
        self._run(self.peer.stop())

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
