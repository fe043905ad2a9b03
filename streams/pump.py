"""The loop that feeds one stream's frames into ComfyUI's queue: one prompt per frame, one at a time.

Completion detection (decision):
- Fast path: ``TrickleOutput`` hands its frame to the session on the worker thread, which wakes this
  loop via ``call_soon_threadsafe``; the next frame's prompt is queued at once, while ComfyUI is still
  finishing the previous one, so the executor never idles between frames of a busy stream.
- Slow path (node errors, ComfyUI's Interrupt, a prompt the user deleted from the queue): a prompt whose
  output has not arrived is checked with ``PromptRunner.outcome``, starting after 20 ms and backing off to
  250 ms. ``outcome`` is one dictionary look-up under ComfyUI's queue lock, so this polling costs
  microseconds per check and only runs while a prompt is overdue. ComfyUI offers no completion hook
  (``add_on_prompt_handler`` sees only POST /prompt bodies); the alternatives, wrapping
  ``PromptServer.send_sync`` or ``PromptQueue.task_done``, would monkey-patch ComfyUI for every user.
- Every finished prompt of ours is forgotten (history entry deleted), so history never grows per frame.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable

from .bridge import FrameBridge
from .context import SessionContext
from .counters import StreamCounters
from .executor import PromptOutcome, PromptState
from .handoff import FrameHandoff, InputFrame
from .stages import Stage
from .updates import Generation
from .warmup import COVER_AFTER_S, COVER_TICK_S, WarmupCover
from .workflow import PromptBuilder

GENERATION_KEY = "generation"

logger = logging.getLogger(__name__)

POLL_FIRST_S = 0.02
POLL_MAX_S = 0.25
DRAIN_TIMEOUT_S = 10.0
# Frames up to this size are prepared on the event loop (about 0.2 ms of numpy at 512x512), larger ones
# in a worker thread so the loop that serves every stream's network I/O is never held up for long.
INLINE_PREPARE_MAX_PIXELS = 512 * 512


def _pixels(frame: InputFrame) -> int:
    shape = getattr(frame.image, "shape", None)
    if shape is None or len(shape) < 2:
        return INLINE_PREPARE_MAX_PIXELS + 1  # unknown size: keep it off the loop
    return int(shape[0]) * int(shape[1])


class PromptPump:
    """Queues one prompt per frame of a ``FrameHandoff`` and watches each to its end."""

    def __init__(
        self,
        context: SessionContext,
        *,
        builder: PromptBuilder,
        bridge: FrameBridge,
        handoff: FrameHandoff,
        counters: StreamCounters,
        next_generation: Callable[[], Generation | None] | None = None,
        cover: WarmupCover | None = None,
        warming: Callable[[], bool] | None = None,
    ) -> None:
        # live control (``streams.updates``, ``streams.warmup``): between two frames the pump asks
        # ``next_generation`` for a newer workflow; while ``warming()``, a slow frame is covered
        self._next_generation = next_generation
        self._generation = 1
        self._cover = cover
        self._warming = warming
        self._context = context
        self._runner = context.runner
        self._builder = builder
        self._bridge = bridge
        self._handoff = handoff
        self._counters = counters
        self._client_id = f"comfy-trickle:{builder.stream_id}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[int, asyncio.Future[None]] = {}
        # prompts whose output arrived but which ComfyUI may still be finishing: (prompt id, ticket)
        self._finishing: collections.deque[tuple[str, int]] = collections.deque()
        self._in_flight: tuple[str, int] | None = None
        self.prompts_submitted = 0

    # --- any thread -------------------------------------------------------------------------------------
    def output_arrived(self, ticket: int) -> None:
        """``TrickleOutput`` delivered the frame of ``ticket`` (called on ComfyUI's worker thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._resolve, ticket)
        except RuntimeError:  # loop closed meanwhile: the session is gone
            pass

    def _resolve(self, ticket: int) -> None:
        waiter = self._waiters.get(ticket)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- loop side ----------------------------------------------------------------------------------------
    async def run(self) -> PromptOutcome | None:
        """Pump until the input ends (returns None) or a node fails (returns that prompt's outcome)."""
        self._loop = asyncio.get_running_loop()
        # frames ready here make a stream over its fair share wait (streams.fairness)
        self._context.fairness.track_backlog(self._builder.stream_id, self._handoff.__len__)
        while True:
            failure = self._reap_finishing()
            if failure is not None:
                return failure
            frame = await self._handoff.get()
            if frame is None:
                break
            self._switch_generation()
            await self._prepare(frame)
            failure = await self._run_frame(frame)
            if failure is not None:
                return failure
        return await self._drain()

    def _switch_generation(self) -> None:
        """Between two frames: start using the newest accepted generation, if one waits."""
        if self._next_generation is None:
            return
        generation = self._next_generation()
        if generation is not None:
            self._builder = generation.builder
            self._generation = generation.number

    async def _prepare(self, frame: InputFrame) -> None:
        """CPU work for this frame (e.g. uint8 -> float tensor) off ComfyUI's shared executor thread."""
        prepare_frame = self._context.prepare_frame
        if prepare_frame is None:
            return
        # A small frame is prepared right here: the round trip through a worker thread costs about as
        # much CPU as the work itself (0.14 vs 0.21 ms at 512x512 on 2 cores) plus two wake-ups.
        if _pixels(frame) <= INLINE_PREPARE_MAX_PIXELS:
            prepare_frame(frame)
        else:
            await asyncio.to_thread(prepare_frame, frame)

    async def _run_frame(self, frame: InputFrame) -> PromptOutcome | None:
        """Queue the frame's prompt and wait for its output or its end; a node's failure is returned."""
        assert self._loop is not None  # noqa: S101 - set by run()
        ticket = self._bridge.open_ticket(frame)
        waiter = self._loop.create_future()
        self._waiters[ticket] = waiter
        try:
            await self._context.fairness.turn(self._builder.stream_id)  # fair share (streams.fairness)
            prompt_id = self._submit(frame, ticket)
            outcome = await self._await_frame(prompt_id, ticket, waiter, frame)
        finally:
            self._waiters.pop(ticket, None)
        # (left set if cancelled: ``abandon`` then forgets the prompt)
        self._in_flight = None
        if outcome is None:
            self._finishing.append((prompt_id, ticket))
            return None
        self._bridge.close_ticket(ticket)
        self._runner.forget(prompt_id)
        if outcome.state is PromptState.ERROR:
            return outcome
        # interrupted, lost, or finished without reaching TrickleOutput: that frame is dropped
        logger.info("stream %s: frame dropped (%s)", self._bridge.stream_id, outcome.state.value)
        self._counters.frame_dropped()
        return None

    def _submit(self, frame: InputFrame, ticket: int) -> str:
        frame.extra[GENERATION_KEY] = self._generation
        prompt = self._builder.build(ticket, self._context.inert_nodes(self._builder.stream_id))
        stamps = frame.stamps
        queued = stamps.queued = time.perf_counter()
        if stamps.handoff is not None:
            self._counters.stage(Stage.HANDOFF_WAIT, queued - stamps.handoff)
        prompt_id = self._runner.submit(
            prompt, self._builder.output_ids, self._client_id, self._bridge.ticket_secret(ticket)
        )
        self.prompts_submitted += 1
        self._in_flight = (prompt_id, ticket)
        return prompt_id

    async def _await_frame(
        self, prompt_id: str, ticket: int, waiter: asyncio.Future[None], frame: InputFrame
    ) -> PromptOutcome | None:
        """None once the output arrived; otherwise the outcome of a prompt that ended without one."""
        delay = POLL_FIRST_S
        queued = time.monotonic()
        while True:
            covering = self._cover is not None and self._warming is not None and self._warming()
            try:
                wait = min(delay, COVER_TICK_S) if covering else delay
                await asyncio.wait_for(asyncio.shield(waiter), wait)
                return None
            except asyncio.TimeoutError:  # noqa: UP041 - distinct from TimeoutError on Python 3.10
                pass
            if covering and time.monotonic() - queued >= COVER_AFTER_S:
                self._cover_waiting(frame)
            outcome = self._runner.outcome(prompt_id)
            if outcome.finished:
                # the output may have been scheduled between the timeout and the look-up
                await asyncio.sleep(0)
                return None if waiter.done() else outcome
            delay = min(delay * 2, POLL_MAX_S)

    def _cover_waiting(self, frame: InputFrame) -> None:
        """The warming generation is slow: ``frame`` and every newer frame go out as placeholders."""
        assert self._cover is not None  # noqa: S101 - only called while covering
        self._cover.cover(frame)
        for newer in self._handoff.take_all():
            self._cover.cover(newer)

    def _reap_finishing(self) -> PromptOutcome | None:
        """Forget our finished prompts; report one that failed after its output (e.g. a second node)."""
        failure = None
        while self._finishing:
            prompt_id, ticket = self._finishing[0]
            outcome = self._runner.outcome(prompt_id)
            if not outcome.finished:
                break
            self._finishing.popleft()
            self._bridge.close_ticket(ticket)
            self._runner.forget(prompt_id)
            if outcome.state is PromptState.ERROR and failure is None:
                failure = outcome
        return failure

    async def _drain(self) -> PromptOutcome | None:
        """At end of input: wait (bounded) for ComfyUI to finish our last prompts, then forget them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_TIMEOUT_S
        while True:
            failure = self._reap_finishing()
            if failure is not None or not self._finishing or loop.time() > deadline:
                return failure
            await asyncio.sleep(POLL_FIRST_S)

    def abandon(self) -> None:
        """On stop: forget every prompt of ours (queued ones leave the queue; a running one's history
        entry is deleted when it finishes)."""
        pending = list(self._finishing)
        if self._in_flight is not None:
            pending.append(self._in_flight)
        self._finishing.clear()
        for prompt_id, ticket in pending:
            self._bridge.close_ticket(ticket)
            self._runner.forget(prompt_id)
