"""One live stream: subscribe -> decode -> hand-off -> one prompt per frame -> encode -> publish.

Threads and tasks of a session (all freed by ``stop``):
- the ingest's decode thread calls ``_on_frame``/``_on_audio`` (frames go to the ``FrameHandoff``,
  audio straight to the egress so it stays on the input timeline);
- the pump task (on the event loop) queues each frame's prompt into ComfyUI's own queue (at most one
  more waits behind the running one: ``pump``'s look-ahead);
- ComfyUI's worker thread runs the prompt; ``TrickleOutput`` calls ``_on_output`` (never blocks);
- the egress thread converts, encodes (output pts = input pts) and publishes;
- the supervisor task turns how the pump ended into the final state.

States: ``starting`` -> (``waiting``: the input channel does not exist yet ->) ``running`` ->
``completed`` (input ended, last frames flushed, output channel ended) | ``error`` (a node failed: node
id, type and message in ``error``; or the input failed) | ``stopping`` -> ``stopped``. ComfyUI's
Interrupt only drops the frame it hit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..media.types import AudioPacket, DecodedFrame
from ..trickle.redact import redact_text
from .bridge import FrameBridge
from .config import StreamConfig
from .context import SessionContext
from .control import ControlListener
from .counters import StreamCounters
from .executor import PromptOutcome
from .handoff import FrameHandoff, InputFrame, frames_of
from .media_io import Egress, Ingest, InputWatcher
from .pump import PromptPump
from .stages import Stage
from .state import StreamState
from .updates import Generation, UpdateEngine
from .warmup import WarmupCover
from .workflow import PromptBuilder

logger = logging.getLogger(__name__)

STATUS_EVENT = "trickle.status"
STATUS_INTERVAL_S = 1.0
# stop() must return within 2 s: closing the ends shares this budget
CLOSE_BUDGET_S = 1.5
# how long start() waits to learn whether the input channel exists (a 404 comes back at once; an existing
# channel without data yet holds the first GET, and the stream is then simply running)
INPUT_PROBE_S = 0.5
FINISH_TIMEOUT_S = 10.0


class StreamSession:
    """A running stream; created and owned by ``StreamRegistry``."""

    def __init__(
        self,
        config: StreamConfig,
        context: SessionContext,
        *,
        builder: PromptBuilder,
        ingest: Ingest,
        egress: Egress,
        max_backlog_s: float = 1.0,
        updates: UpdateEngine | None = None,
    ) -> None:
        self.config = config
        self.stream_id: str = config.stream_id
        self.state = StreamState.STARTING
        self.error: dict[str, Any] | None = None
        self.counters = StreamCounters()
        # wall-clock start (epoch seconds): the UI lists streams in a stable order by it
        self.started_at = round(time.time(), 3)
        self.builder = builder
        self._context = context
        self._ingest = ingest
        self._egress = egress
        self._max_backlog_s = max_backlog_s
        self._bridge = FrameBridge(
            self.stream_id, self._on_output, newest_frame_reads=context.newest_frame_reads
        )
        self._handoff: FrameHandoff | None = None
        self._pump: PromptPump | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._frames_seen = 0
        self._latest_output: tuple[Any, int] | None = None
        self._finished = asyncio.Event()
        self._stop_lock = asyncio.Lock()
        # observers (the Livepeer events channel): (kind, message) of each error; params applied
        self.error_listeners: list[Callable[[str, str], None]] = []
        self.params_listeners: list[Callable[[dict[str, Any]], None]] = []
        # live control (streams/updates.py, warmup.py, control.py)
        self.updates = updates
        self._cover = WarmupCover(egress.submit, self.counters.frame_dropped)
        self.control: ControlListener | None = None
        if updates is not None and config.control_url:
            self.control = ControlListener(
                config.control_url, self._apply_control_snapshot, stream_id=self.stream_id,
                on_reject=lambda message: self.report_error("params", f"control message rejected: {message}"),
            )

    async def _apply_control_snapshot(self, snapshot: dict[str, Any]) -> None:
        assert self.updates is not None  # noqa: S101 - the listener exists only with an update engine
        if (await self.updates.update(snapshot, snapshot=True)).applied:
            self.report_params(snapshot)  # the events channel, as for updates over HTTP

    # --- lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start ingest, pump and egress; returns at once (frames flow in the background)."""
        loop = asyncio.get_running_loop()
        handoff = FrameHandoff(
            loop, max_backlog_s=self._max_backlog_s, max_lateness_s=lambda: self.config.max_lateness_s
        )
        self._handoff = handoff
        # read the object itself, never its truthiness: an empty hand-off has len() 0 and would read as
        # "no drops" (final statuses showed 0 dropped because the queue is empty once a stream ends)
        self.counters.add_drop_source(lambda: handoff.dropped)
        self._pump = PromptPump(
            self._context, builder=self.builder, bridge=self._bridge, handoff=handoff, counters=self.counters,
            next_generation=self._next_generation if self.updates is not None else None,
            cover=self._cover, warming=self.updates.warming if self.updates is not None else None,
            frames_per_prompt=lambda: self.config.frames_per_prompt,
            first_frame_timeout_s=lambda: self.config.first_frame_timeout_s,
        )
        self._context.bridges.register(self._bridge)
        self._egress.start(self._on_written, self._on_egress_failed, on_stage=self.counters.stage)
        input_known = asyncio.Event()
        if isinstance(self._ingest, InputWatcher):
            self._ingest.watch_input(lambda waiting: self._on_input_waiting(waiting, input_known))
        else:
            input_known.set()
        ingest = asyncio.create_task(self._run_ingest(), name=f"trickle-ingest-{self.stream_id}")
        self._tasks = [
            ingest,
            asyncio.create_task(self._supervise(), name=f"trickle-pump-{self.stream_id}"),
            asyncio.create_task(self._tick(), name=f"trickle-status-{self.stream_id}"),
        ]
        if self.control is not None:
            control = asyncio.create_task(self.control.run(), name=f"trickle-control-{self.stream_id}")
            self._tasks.append(control)
        # so the start answer already says "waiting" when the input channel is missing
        known = asyncio.ensure_future(input_known.wait())
        await asyncio.wait({known, ingest}, timeout=INPUT_PROBE_S, return_when=asyncio.FIRST_COMPLETED)
        known.cancel()
        if self.state is StreamState.STARTING:
            self._set_state(StreamState.RUNNING)

    async def stop(self) -> dict[str, Any]:
        """Stop now (within ~2 s even while a prompt runs) and free everything; returns the final status."""
        async with self._stop_lock:
            if self.state.active:
                self._set_state(StreamState.STOPPING)
                await self._teardown(StreamState.STOPPED)
        return self.status()

    async def wait_finished(self, timeout: float | None = None) -> bool:
        """Wait until the stream is stopped, completed or in error; False on timeout."""
        try:
            await asyncio.wait_for(self._finished.wait(), timeout)
        except asyncio.TimeoutError:  # noqa: UP041 - distinct from TimeoutError on Python 3.10
            return False
        return True

    # --- status -------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The status object of docs/ARCHITECTURE.md (``counters.stage_ms``: see ``stages.Stage``).

        ``fps_in``/``fps_out`` are frames per second of *video*: the frames decoded (written) whose
        timestamps lie in the last 4 s of the stream's media time, over the media time they span - so a
        30 fps source reads 30 even though trickle delivers it a segment (a burst of frames) at a time,
        and frames dropped or missing lower it. If those frames took more than 2 s (a segment's
        burst) longer than that to arrive, the wall-clock time is the divisor (a workflow well behind
        real time reads its real rate); after 3 s without a frame the figure is 0, and 0 once the
        stream ended.
        See ``counters.FrameRateMeter``.
        """
        counters = self.counters.snapshot()
        status = {
            "request_id": self.stream_id,
            "state": self.state.value,
            "config": self.config.to_json(),
            "counters": counters,
            "executor_share": round(self._context.fairness.share(self.stream_id), 3),
            "error": self.error,
            "started_at": self.started_at,
        }
        if self.updates is not None:
            status.update(self.updates.status())
            counters.update(self.updates.counts, frames_covered=self._cover.frames_covered)
            pump = self._pump if self.state.active else None
            status["warm_up"] = pump.warm_up_status() if pump is not None else None
            status["control"] = self.control.status() if self.control is not None else None
        return status

    def brief(self) -> dict[str, Any]:
        """``{"state", "counters": {frames_in, frames_processed, frames_out, frames_dropped,
        frames_covered}}``: the status's state and counts without its rates, percentiles and config."""
        counters = self.counters
        return {
            "state": self.state.value,
            "counters": {
                "frames_in": counters.frames_in,
                "frames_processed": counters.frames_processed,
                "frames_out": counters.frames_out,
                "frames_dropped": counters.frames_dropped,
                "frames_covered": self._cover.frames_covered,
            },
        }

    def latest_output(self) -> tuple[Any, int] | None:
        """The newest output frame written: (RGB uint8 ``[H, W, 3]`` array, pts), or None."""
        return self._latest_output

    def report_error(self, kind: str, message: str) -> None:
        """Tell observers about an error (kinds: ``node``, ``input``, ``output``, ``internal``, or a
        caller's, e.g. ``params`` for a rejected update); the stream itself is not changed here."""
        for listener in list(self.error_listeners):
            try:
                listener(kind, message)
            except Exception:
                logger.exception("stream %s: error listener failed", self.stream_id)

    def report_params(self, params: dict[str, Any]) -> None:
        """Tell observers that ``params`` were applied (the status events carry their hash and time)."""
        for listener in list(self.params_listeners):
            try:
                listener(params)
            except Exception:
                logger.exception("stream %s: params listener failed", self.stream_id)

    # --- callbacks from other threads ---------------------------------------------------------------------
    def _on_frame(self, decoded: DecodedFrame) -> None:
        self.counters.frame_in(decoded.time)
        if decoded.decode_s is not None:
            self.counters.stage(Stage.DECODE, decoded.decode_s)
        frame = InputFrame(
            index=self._frames_seen,
            picture=decoded.picture,
            pts=decoded.pts,
            time_base=decoded.time_base,
            media_time=decoded.time,
            arrival=time.monotonic(),
        )
        self._frames_seen += 1
        self._bridge.note_latest(frame)
        frame.stamps.handoff = time.perf_counter()
        if self._handoff is not None and not self._handoff.put(frame):
            self.counters.frame_dropped()

    def _on_audio(self, packet: AudioPacket) -> None:
        self._egress.put_audio(packet)

    def _on_output(self, ticket: int, frame: InputFrame, images: Any) -> None:
        """``TrickleOutput`` ran for ``frame`` (ComfyUI's worker thread): hand over, wake the pump."""
        received = time.perf_counter()
        started, queued = frame.stamps.input_started, frame.stamps.queued
        if started is not None:
            self.counters.stage(Stage.WORKFLOW, received - started)
            if queued is not None:
                self.counters.stage(Stage.EXECUTOR_QUEUE, started - queued)
                self._context.fairness.charge(self.stream_id, queued, received)
        self.counters.frame_processed(len(frames_of(frame)))
        if self.updates is not None:
            self.updates.output_seen(frame.extra.get("generation", 1))
        # a frame covered while its generation warmed up already has its placeholder in the output
        if self._cover.claim(frame) and not self._egress.submit(frame, images):
            self.counters.frame_dropped(len(frames_of(frame)))
        if self._pump is not None:
            self._pump.output_arrived(ticket)

    def _next_generation(self) -> Generation | None:
        """Between two frames (the pump): switch to the newest accepted generation, if one waits."""
        assert self.updates is not None  # noqa: S101 - only wired when updates exist
        generation = self.updates.take()
        if generation is None:
            return None
        old, new = self.config, generation.config
        self.builder, self.config = generation.builder, new
        self._context.carried_changed()  # (its frame-independent nodes, which others' prompts carry)
        if (old.width, old.height) != (new.width, new.height):
            resize = getattr(self._ingest, "resize", None)
            if resize is not None:
                resize(new.width, new.height)
        backlog = new.max_backlog_s
        if backlog is not None and backlog != old.max_backlog_s and self._handoff is not None:
            self._handoff.set_max_backlog(backlog)
        self._notify()
        return generation

    def _on_written(self, frame: InputFrame, rgb: Any, pts: int) -> None:
        media_time = float(pts * frame.time_base) if frame.time_base else frame.media_time
        self.counters.frame_out(frame.arrival, media_time)
        self._latest_output = (rgb, pts)

    def _on_input_waiting(self, waiting: bool, input_known: asyncio.Event) -> None:
        """The ingest found the input channel missing (``waiting``) or delivering (event loop)."""
        input_known.set()
        if waiting and self.state in (StreamState.STARTING, StreamState.RUNNING):
            self._set_state(StreamState.WAITING)
        elif not waiting and self.state is StreamState.WAITING:
            self._set_state(StreamState.RUNNING)

    def _on_egress_failed(self, message: str) -> None:
        self._fail({"node_id": None, "node_type": None, "message": message}, "output")

    # --- tasks --------------------------------------------------------------------------------------------
    async def _run_ingest(self) -> None:
        assert self._handoff is not None  # noqa: S101 - set in start() before this task exists
        try:
            await self._ingest.run(self._on_frame, self._on_audio)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            logger.warning("stream %s: input failed: %s", self.stream_id, err)
            self._fail({"node_id": None, "node_type": None, "message": f"input failed: {err}"}, "input")
            return
        self._handoff.end()

    async def _supervise(self) -> None:
        assert self._pump is not None  # noqa: S101 - set in start() before this task exists
        try:
            failure = await self._pump.run()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            logger.exception("stream %s: prompt pump failed", self.stream_id)
            self._fail({"node_id": None, "node_type": None, "message": f"internal error: {err}"}, "internal")
            return
        if failure is not None:
            self._fail(self._error_of(failure))
            return
        if self.state is not StreamState.RUNNING:
            return
        # input ended and every prompt finished: flush the output, end its channel
        try:
            await asyncio.wait_for(self._egress.finish(), FINISH_TIMEOUT_S)
        except Exception as err:  # also a timeout
            logger.warning("stream %s: output did not finish cleanly: %r", self.stream_id, err)
        self._schedule_teardown(StreamState.COMPLETED)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            self._notify()

    def _error_of(self, outcome: PromptOutcome) -> dict[str, Any]:
        return {
            "node_id": self.builder.original_id(outcome.node_id),
            "node_type": outcome.node_type,
            "message": (outcome.message or "node failed").strip(),
        }

    def _fail(self, error: dict[str, Any], kind: str = "node") -> None:
        error = {**error, "message": redact_text(str(error.get("message") or ""))}
        if not self.state.active or self.state is StreamState.STOPPING:
            return
        logger.warning("stream %s: error: %s", self.stream_id, error)
        self.error = error
        self.report_error(kind, str(error.get("message")))
        self._schedule_teardown(StreamState.ERROR)

    def _schedule_teardown(self, final: StreamState) -> None:
        # run as its own task: teardown cancels the task that asked for it
        task = asyncio.create_task(self._teardown_locked(final), name=f"trickle-teardown-{self.stream_id}")
        task.add_done_callback(_log_task_error)

    async def _teardown_locked(self, final: StreamState) -> None:
        async with self._stop_lock:
            if self.state.active:
                await self._teardown(final)

    async def _teardown(self, final: StreamState) -> None:
        """Free every task, thread, socket and queue; then enter ``final``."""
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        if self._pump is not None:
            self._pump.abandon()
        self._bridge.close()
        self._context.bridges.unregister(self._bridge)
        if self._handoff is not None:
            self._handoff.close()
        closers = [self._ingest.close(), self._egress.close()]
        done = await asyncio.wait(
            [asyncio.ensure_future(c) for c in closers], timeout=CLOSE_BUDGET_S
        )
        for task in done[0]:
            if not task.cancelled() and task.exception() is not None:
                logger.warning("stream %s: close failed: %r", self.stream_id, task.exception())
        if done[1]:
            logger.warning("stream %s: %d end(s) did not close within %.1f s", self.stream_id,
                           len(done[1]), CLOSE_BUDGET_S)
        others = [t for t in self._tasks if t is not current]
        if others:
            await asyncio.wait(others, timeout=0.3)
        self.counters.finish()
        self._set_state(final)
        self._finished.set()
        self._context.on_finished(self)

    def _set_state(self, state: StreamState) -> None:
        if state is self.state:
            return
        logger.info("stream %s: %s -> %s", self.stream_id, self.state.value, state.value)
        self.state = state
        self._notify()

    def _notify(self) -> None:
        if self._context.notifier is not None:
            self._context.notify(STATUS_EVENT, self.status())


def _log_task_error(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("comfy-trickle: %s failed", task.get_name(), exc_info=task.exception())
