"""The process as one Livepeer worker: per-stream events, health, free slots, the report hooks.

``stream_started`` is called by the start route once a stream runs; a watch task on the event loop then
samples every tracked session (``tick_s``), feeds its ``StreamPipelineStatus``, sends the first-segment
traces and closes its events channel when the stream ends. Capacity listeners (registration) hear the
number of free stream slots whenever it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..streams.errors import StreamNotFound
from .data_output import PROCESS_DATA_OUTPUTS, DataOutput
from .events import DEFAULT_STATUS_INTERVAL_S, EventSink, SinkFactory, StreamEvents
from .pipeline_status import StreamPipelineStatus

logger = logging.getLogger(__name__)

ACTIVE_STATES = ("starting", "running", "stopping")
TICK_S = 0.5
# health reads ERROR this long after a stream ended in error (ai-runner's worker polls every 5 s)
ERROR_HOLD_S = 30.0
# "stuck": input keeps arriving but no frame came out of the executor for this long
STUCK_AFTER_S = 60.0
FORGET_AFTER_S = 120.0


class SessionLike(Protocol):
    error_listeners: list[Callable[[str, str], None]]
    params_listeners: list[Callable[[dict[str, Any]], None]]


class RegistryLike(Protocol):
    max_streams: int

    def status(self, stream_id: str) -> dict[str, Any]: ...

    def statuses(self) -> dict[str, dict[str, Any]]: ...

    def brief(self, stream_id: str) -> dict[str, Any]: ...

    def active_count(self) -> int: ...

    def session(self, stream_id: str) -> Any: ...


@dataclass
class TrackedStream:
    stream_id: str
    status: StreamPipelineStatus
    events: StreamEvents | None
    data: DataOutput | None
    traced_ingest: bool = False
    traced_output: bool = False
    ended_at: float | None = None
    stream_state: str = "starting"
    counters: dict[str, Any] = field(default_factory=dict)


class LivepeerWorker:
    def __init__(
        self,
        registry: RegistryLike,
        *,
        pipeline: str = "comfyui",
        status_interval_s: float = DEFAULT_STATUS_INTERVAL_S,
        tick_s: float = TICK_S,
        stuck_after_s: float = STUCK_AFTER_S,
        sink_factory: SinkFactory | None = None,
    ) -> None:
        self.registry = registry
        self.pipeline = pipeline
        self.status_interval_s = status_interval_s
        self.stuck_after_s = stuck_after_s
        self._tick_s = tick_s
        self._sink_factory = sink_factory
        self._streams: dict[str, TrackedStream] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = False
        self._free_slots: int | None = None
        self.capacity_listeners: list[Callable[[int], None]] = []

    # --- lifecycle (event loop) -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the watch task (idempotent); health leaves LOADING."""
        self._ready = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch(), name="livepeer-worker")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(self._end(t) for t in self._streams.values() if t.ended_at is None),
                             return_exceptions=True)

    # --- hooks ------------------------------------------------------------------------------------------
    def stream_started(self, config: Any, received_at: float) -> None:
        """A stream began (called by the start route): track it, open its events and data channels."""
        self.start()
        status = StreamPipelineStatus(self.pipeline, start_time=received_at)
        status.params_updated(
            {"prompt": config.workflow, "width": config.width, "height": config.height, **config.params},
            received_at,
        )
        events = None
        if config.events_url:
            sink: Any = {} if self._sink_factory is None else {"sink_factory": self._sink_factory}
            events = StreamEvents(config.events_url, status, interval_s=self.status_interval_s, **sink)
            events.trace_at("runner_receive_stream_request", received_at)
            events.start()
        data = None
        if getattr(config, "data_url", ""):
            data = DataOutput(config.data_url)
            data.start()
            PROCESS_DATA_OUTPUTS.register(config.stream_id, data)
        tracked = TrackedStream(config.stream_id, status, events, data)
        old = self._streams.pop(config.stream_id, None)
        if old is not None and old.ended_at is None:
            asyncio.get_running_loop().create_task(self._end(old))
        self._streams[config.stream_id] = tracked
        with contextlib.suppress(StreamNotFound, AttributeError):
            session = self.registry.session(config.stream_id)
            session.error_listeners.append(lambda kind, message: self.report_error(config.stream_id, kind,
                                                                                   message))
            session.params_listeners.append(lambda params: self.params_updated(config.stream_id, params))
        self._check_capacity()

    def report_error(self, stream_id: str, kind: str, message: str) -> None:
        """An error of a stream (node, input, output, rejected update): an ``error`` event now."""
        tracked = self._streams.get(stream_id)
        if tracked is None:
            return
        if tracked.events is not None:
            tracked.events.error(kind, message)
        else:
            tracked.status.error_reported(message)

    def params_updated(self, stream_id: str, params: dict[str, Any]) -> None:
        """New params applied to a stream: the next status carries them, their hash and the time."""
        tracked = self._streams.get(stream_id)
        if tracked is not None:
            tracked.status.params_updated(params)

    # --- reading ----------------------------------------------------------------------------------------
    def free_slots(self) -> int:
        return max(0, self.registry.max_streams - self.registry.active_count())

    def active_count(self) -> int:
        return min(self.registry.max_streams, self.registry.active_count())

    def pipeline_states(self) -> dict[str, str]:
        return {sid: t.status.state for sid, t in self._streams.items()}

    def stuck(self, now: float | None = None) -> list[str]:
        """Streams whose input keeps coming while nothing left the executor for ``stuck_after_s``."""
        now = time.time() if now is None else now
        found = []
        for sid, t in self._streams.items():
            st = t.status
            if t.ended_at is not None or not st.running or st.last_input_time is None:
                continue
            last_out = st.last_output_time or st.ready_time or st.start_time
            if now - st.last_input_time < 5.0 and now - last_out > self.stuck_after_s:
                found.append(sid)
        return found

    def health(self, now: float | None = None) -> dict[str, Any]:
        """``{"status": LOADING|IDLE|OK|ERROR}`` plus why (the extra keys are ours)."""
        now = time.time() if now is None else now
        if not self._ready:
            return {"status": "LOADING"}
        # a stream in error (the session's state), not a pipeline ERROR from a stall of a few seconds
        # (a user's long prompt): health ERROR makes Livepeer's worker restart the whole container
        errors = [sid for sid, t in self._streams.items()
                  if t.status.finished_in_error and (t.ended_at is None or now - t.ended_at < ERROR_HOLD_S)]
        stuck = self.stuck(now)
        active = self.active_count()
        if errors or stuck:
            return {"status": "ERROR", "streams_in_error": errors, "stuck_streams": stuck,
                    "active_streams": active}
        return {"status": "OK" if active else "IDLE", "active_streams": active}

    # --- the watch task ---------------------------------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            try:
                self._sample(time.time())
            except Exception:
                logger.exception("livepeer worker: sampling failed")
            await asyncio.sleep(self._tick_s)

    def _sample(self, now: float) -> None:
        for sid, tracked in list(self._streams.items()):
            if tracked.ended_at is not None:
                if now - tracked.ended_at > FORGET_AFTER_S:
                    self._streams.pop(sid, None)
                continue
            try:
                # (counts only: a whole status per stream per tick was 8 % of the loop at 12 streams)
                snapshot = self.registry.brief(sid)
            except StreamNotFound:
                snapshot = {"state": "stopped", "counters": tracked.counters}
            tracked.stream_state = snapshot.get("state", "stopped")
            tracked.counters = snapshot.get("counters") or {}
            tracked.status.observe(tracked.stream_state, tracked.counters, now)
            if tracked.events is not None:
                if not tracked.traced_ingest and tracked.counters.get("frames_in"):
                    tracked.traced_ingest = True
                    tracked.events.trace("runner_receive_first_ingest_segment")
                if not tracked.traced_output and tracked.counters.get("frames_out"):
                    tracked.traced_output = True
                    tracked.events.trace("runner_send_first_processed_segment")
            if tracked.stream_state not in ACTIVE_STATES:
                tracked.ended_at = now
                asyncio.get_running_loop().create_task(self._end(tracked))
        self._check_capacity()

    async def _end(self, tracked: TrackedStream) -> None:
        tracked.ended_at = tracked.ended_at or time.time()
        if tracked.data is not None:
            PROCESS_DATA_OUTPUTS.unregister(tracked.stream_id, tracked.data)
            await tracked.data.close()
        if tracked.events is not None:
            await tracked.events.close()

    def _check_capacity(self) -> None:
        free = self.free_slots()
        if free == self._free_slots:
            return
        self._free_slots = free
        for listener in list(self.capacity_listeners):
            try:
                listener(free)
            except Exception:
                logger.exception("livepeer worker: capacity listener failed")


__all__ = ["EventSink", "LivepeerWorker", "TrackedStream"]
