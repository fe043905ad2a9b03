"""One stream's events channel: ai-runner's envelope, one trickle segment per event, never blocking.

Envelope and event types: ``livepeer/ai-runner:runner/src/runner/live/streamer/streamer.py``
(``report_status_loop`` every 10 s with ``last_status_timestamp``, ``emit_monitoring_event`` adding a ms
``timestamp``), ``live/process/process_guardian.py`` (``error`` events ``{pipeline, message, time}``),
``live/api/api.py`` and ``live/trickle/media.py`` (``stream_trace``: ``runner_receive_stream_request``,
``runner_receive_first_ingest_segment``, ``runner_send_first_processed_segment``). The gateway stops a
stream after 30 s without an event (``go-livepeer:server/ai_live_video.go startEventsSubscribe``).

Everything runs on the event loop: ComfyUI's executor thread being busy does not delay a status event.
Events wait in a bounded queue (oldest dropped) while the channel is down; each is retried a bounded
number of times, with a fresh publisher after a failure.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..trickle.channels import EventsWriter
from .pipeline_status import StreamPipelineStatus

logger = logging.getLogger(__name__)

STATUS_QUEUE = "ai_stream_events"
TRACE_QUEUE = "stream_trace"
# ai-runner's status_report_interval is 10 s; half a second less keeps "a status at least every 10 s" true
# at the gateway even when a segment's delivery takes a few tens of ms (measured: 10.04 s gaps at 10 s)
DEFAULT_STATUS_INTERVAL_S = 9.5
MAX_QUEUED = 64
MAX_ATTEMPTS = 5
SEND_TIMEOUT_S = 5.0
RETRY_BASE_S = 0.25
RETRY_MAX_S = 2.0
CLOSE_BUDGET_S = 2.0


class EventSink(Protocol):
    async def send(self, event: dict[str, Any], queue_event_type: str = STATUS_QUEUE) -> int: ...

    async def close(self, delete_channel: bool = False) -> None: ...


SinkFactory = Callable[[str], EventSink]


def _ms_now() -> int:
    return int(time.time() * 1000)


class StreamEvents:
    """Status every ``interval_s`` plus error and trace events for one stream's ``events_url``."""

    def __init__(
        self,
        url: str,
        status: StreamPipelineStatus,
        *,
        interval_s: float = DEFAULT_STATUS_INTERVAL_S,
        sink_factory: SinkFactory = EventsWriter,
    ) -> None:
        self.url = url
        self.status = status
        self.interval_s = interval_s
        self.sent = 0
        self.dropped = 0
        self._sink_factory = sink_factory
        self._sink: EventSink | None = None
        self._queue: collections.deque[tuple[dict[str, Any], str]] = collections.deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_status_at: float | None = None
        self._closing = False

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._status_loop(), name="trickle-events-status"),
            asyncio.create_task(self._send_loop(), name="trickle-events-send"),
        ]

    # --- what to send (event loop thread, never blocks) --------------------------------------------------
    def emit(self, event: dict[str, Any], queue_event_type: str = STATUS_QUEUE) -> None:
        event = {**event, "timestamp": event.get("timestamp") or _ms_now()}
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((event, queue_event_type))
        self._wake.set()

    def trace(self, trace_type: str) -> None:
        self.emit({"type": trace_type, "timestamp": _ms_now()}, TRACE_QUEUE)

    def trace_at(self, trace_type: str, at: float) -> None:
        self.emit({"type": trace_type, "timestamp": int(at * 1000)}, TRACE_QUEUE)

    def error(self, kind: str, message: str) -> None:
        now = time.time()
        self.status.error_reported(message, now)
        self.emit({"type": "error", "pipeline": self.status.pipeline, "kind": kind, "message": message,
                   "time": now})

    def emit_status(self) -> None:
        now = time.time()
        self.emit(self.status.to_event(self._last_status_at), STATUS_QUEUE)
        self._last_status_at = now

    # --- tasks ------------------------------------------------------------------------------------------
    async def _status_loop(self) -> None:
        next_at = time.monotonic()
        while True:
            self.emit_status()
            next_at += self.interval_s
            # a late wake-up (a stalled loop) reports at once and resets the rhythm, as ai-runner does
            next_at = max(next_at, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())

    async def _send_loop(self) -> None:
        while True:
            while not self._queue:
                self._drained.set()
                self._wake.clear()
                await self._wake.wait()
            self._drained.clear()
            event, queue_type = self._queue[0]
            if await self._deliver(event, queue_type):
                self.sent += 1
            else:
                self.dropped += 1
            if self._queue and self._queue[0][0] is event:
                self._queue.popleft()

    async def _deliver(self, event: dict[str, Any], queue_type: str) -> bool:
        delay = RETRY_BASE_S
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                if self._sink is None:
                    self._sink = self._sink_factory(self.url)
                await asyncio.wait_for(self._sink.send(event, queue_type), SEND_TIMEOUT_S)
                return True
            except asyncio.CancelledError:
                raise
            except Exception as err:
                logger.warning("events %s: %s event not sent (attempt %d/%d): %r", self.url,
                               event.get("type"), attempt, MAX_ATTEMPTS, err)
                await self._drop_sink()
                if self._closing:
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
        return False

    async def _drop_sink(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sink.close(), 1.0)

    async def close(self) -> None:
        """Send the final status (and what is queued) within ``CLOSE_BUDGET_S``, then stop."""
        if self._closing:
            return
        self._closing = True
        status_task = self._tasks[0] if self._tasks else None
        if status_task is not None:
            status_task.cancel()
        self._drained.clear()
        self.emit_status()
        if len(self._tasks) > 1 and not self._tasks[1].done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained.wait(), CLOSE_BUDGET_S)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._drop_sink()
