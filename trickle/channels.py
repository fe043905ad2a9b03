"""JSON channels: the control reader (gateway -> runner) and the events writer (runner -> gateway).

Each segment carries one JSON document (trickle-protocol.md A12). Control messages are often larger than
one HTTP chunk (ComfyUI workflows), so every segment is read to its end before parsing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from .errors import TrickleSegmentError
from .protocol import SEQ_CURRENT
from .publisher import TricklePublisher
from .subscriber import TrickleSubscriber

logger = logging.getLogger(__name__)

KEEPALIVE_MESSAGE = {"keep": "alive"}
DEFAULT_QUEUE_EVENT_TYPE = "ai_stream_events"

# (seq, error, raw bytes) for a segment that is not a JSON object; the reader then goes on.
InvalidMessageCallback = Callable[[int, Exception, bytes], None]


def _log_invalid(seq: int, error: Exception, raw: bytes) -> None:
    logger.warning("trickle control: skipping segment %d (%d bytes): %s", seq, len(raw), error)


class ControlReader:
    """Async iterator of control messages (dicts) from a JSON trickle channel.

    Starts at the current segment (``-2``) so the last parameters are replayed, skips ``{"keep":"alive"}``
    and empty segments, and reports segments that are not a JSON object through ``on_invalid`` (default:
    a warning) instead of stopping. Iteration ends when the channel ends; transport failures past the
    retry budget propagate as ``TrickleError``.
    """

    def __init__(
        self,
        url: str,
        *,
        start_seq: int = SEQ_CURRENT,
        session: aiohttp.ClientSession | None = None,
        verify_tls: bool = True,
        on_invalid: InvalidMessageCallback | None = None,
        max_message_bytes: int = 16 * 1024 * 1024,
        **subscriber_options: Any,
    ) -> None:
        self.on_invalid = on_invalid or _log_invalid
        self.max_message_bytes = max_message_bytes
        self._subscriber = TrickleSubscriber(
            url, start_seq=start_seq, session=session, verify_tls=verify_tls, **subscriber_options
        )

    def __aiter__(self) -> ControlReader:
        return self

    async def __anext__(self) -> dict[str, Any]:
        message = await self.next_message()
        if message is None:
            raise StopAsyncIteration
        return message

    async def next_message(self) -> dict[str, Any] | None:
        """The next control message, or None at the end of the channel."""
        while True:
            segment = await self._subscriber.next_segment()
            if segment is None:
                return None
            try:
                raw = await segment.read_all(max_bytes=self.max_message_bytes)
            except TrickleSegmentError as err:
                self.on_invalid(segment.seq, err, b"")
                continue
            if not raw.strip():
                continue  # an empty segment (dropped or closed early) carries no message
            try:
                message = json.loads(raw)
            except ValueError as err:
                self.on_invalid(segment.seq, err, raw)
                continue
            if not isinstance(message, dict):
                self.on_invalid(
                    segment.seq, TypeError(f"expected a JSON object, got {type(message).__name__}"), raw
                )
                continue
            if message == KEEPALIVE_MESSAGE:
                continue
            return message

    async def close(self) -> None:
        """Stop reading; frees the pending GET and our session. Idempotent."""
        await self._subscriber.close()

    async def __aenter__(self) -> ControlReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class EventsWriter:
    """Writes events to a JSON channel: one ``{"event": ..., "queue_event_type": ...}`` per segment."""

    def __init__(
        self,
        url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        verify_tls: bool = True,
        mime_type: str = "application/json",
        **publisher_options: Any,
    ) -> None:
        self._publisher = TricklePublisher(
            url, mime_type=mime_type, session=session, verify_tls=verify_tls, **publisher_options
        )
        self._lock = asyncio.Lock()  # one segment at a time keeps events in order

    async def send(self, event: dict[str, Any], queue_event_type: str = DEFAULT_QUEUE_EVENT_TYPE) -> int:
        """Send one event; returns the seq it was written at. Raises ``TrickleError`` on failure."""
        body = json.dumps({"event": event, "queue_event_type": queue_event_type}, separators=(",", ":"))
        async with self._lock:
            return await self._publisher.write_segment(body.encode())

    async def close(self, delete_channel: bool = False) -> None:
        """Stop; the events channel belongs to the gateway, so it is not deleted unless asked."""
        await self._publisher.close(delete_channel=delete_channel)

    async def __aenter__(self) -> EventsWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
