"""A stream's control channel (``control_url``): each trickle segment is one JSON message, a full snapshot of
the stream's params (ai-runner semantics, see ``streams.updates``), applied through the same update engine
as the REST route.

``{"keep":"alive"}`` and empty segments are skipped by ``trickle.channels.ControlReader``; a replayed
snapshot (the gateway replays its last params when it re-creates the channel) is a no-op of the engine.
A message that is not a JSON object, or whose params are invalid, is logged and counted
(``rejected``, ``last_error``) and the running generation keeps going. The channel ending or failing never
stops the stream: it is logged and shown in the status (``state``: ``listening`` -> ``ended`` | ``failed``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..trickle.channels import ControlReader
from .errors import ApiError

logger = logging.getLogger(__name__)

# messages carry whole workflows with base64 images in params (issue 11: up to 10 MiB must work)
MAX_CONTROL_MESSAGE_BYTES = 16 * 1024 * 1024

# (the snapshot) -> applies it; raises ``ApiError`` when it is invalid
SnapshotApplier = Callable[[dict[str, Any]], Awaitable[Any]]


class ControlListener:
    """Reads one stream's control channel and applies each snapshot (see the module docstring)."""

    def __init__(self, url: str, apply: SnapshotApplier, *, stream_id: str = "",
                 on_reject: Callable[[str], None] | None = None) -> None:
        self.url = url
        self._apply = apply
        self._on_reject = on_reject
        self._stream_id = stream_id or url
        self.state = "connecting"
        self.messages = 0
        self.rejected = 0
        self.last_error: str | None = None

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "messages": self.messages, "rejected": self.rejected,
                "last_error": self.last_error}

    def _reject(self, message: str) -> None:
        self.rejected += 1
        self.last_error = message
        logger.warning("stream %s: control message rejected: %s", self._stream_id, message)
        if self._on_reject is not None:
            self._on_reject(message)  # e.g. an error event on the stream's events channel

    def _invalid_segment(self, seq: int, error: Exception, raw: bytes) -> None:
        self.messages += 1
        self._reject(f"segment {seq} ({len(raw)} bytes) is not a JSON object: {error}")

    async def run(self) -> None:
        """Until the channel ends or fails (never raises but on cancellation)."""
        reader = ControlReader(self.url, on_invalid=self._invalid_segment,
                               max_message_bytes=MAX_CONTROL_MESSAGE_BYTES)
        try:
            self.state = "listening"
            async for message in reader:
                self.messages += 1
                try:
                    await self._apply(message)
                except ApiError as err:
                    self._reject(err.message)
            self.state = "ended"
            logger.info("stream %s: control channel ended; the stream goes on", self._stream_id)
        except asyncio.CancelledError:
            self.state = "closed"
            raise
        except Exception as err:  # whatever went wrong, the stream never depends on its control channel
            self.state = "failed"
            self.last_error = f"control channel failed: {err}"
            logger.warning("stream %s: control channel failed (%s); the stream goes on", self._stream_id, err)
        finally:
            await reader.close()
