"""The loop that feeds one stream's frames into ComfyUI's queue: one prompt per frame, or per batch.

Batches (decision): with ``params.max_frames_per_prompt`` above 1, a prompt takes, besides its frame, the
frames already waiting behind it (up to that many in all) as one IMAGE batch; nothing ever waits for a
batch to fill, so a stream that keeps up still sends one frame per prompt at the same latency. A stream
that falls behind (too many streams, a burst, an unpaced source) then pays ComfyUI's per-prompt cost once
per batch instead of once per frame, instead of dropping frames. Opt-in, because only workflows that treat
the images of a batch independently give the same pixels (a sampler's noise, for one, depends on the
batch index). Never while a warm-up is being covered (its placeholders go out frame by frame).

Look-ahead (decision): while a frame's prompt runs, the stream's next frame, once it is in hand, gets its
prompt queued behind it, so ComfyUI starts it the moment the running one ends instead of idling until
the event loop has seen that output and queued the next. At most one prompt waits ahead, and only while
no other stream has a frame ready (their prompts keep the executor busy anyway, and a deeper queue would
only add latency), never while a slow warm-up is being covered. The frame queued ahead is the one the
stream would take next anyway, and when the stream is overloaded its prompt swaps it for the newest frame
as it starts (``streams.handoff``), so waiting in the queue makes no frame older. If
the prompt it waits behind fails, it is withdrawn: ComfyUI records the failure in its history before it
starts the next prompt, and the frame's ``TrickleInput`` asks for it (``FrameBridge.open_ticket``'s
``withdraw_if``), so a failing stream never runs a frame past the failure.

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
from dataclasses import dataclass, replace

from .bridge import FrameBridge
from .context import SessionContext
from .counters import StreamCounters
from .executor import PromptOutcome, PromptState
from .handoff import FrameHandoff, InputFrame, frames_of
from .stages import Stage
from .updates import Generation
from .warmup import (
    COVER_AFTER_S,
    COVER_TICK_S,
    NO_OUTPUT_LIMIT,
    WarmupClock,
    WarmupCover,
    first_frame_timed_out,
    no_output_message,
)
from .workflow import PromptBuilder

GENERATION_KEY = "generation"
# the client id of a stream's frame prompts is this prefix + the stream id (``host.frame_messages``)
FRAME_CLIENT_PREFIX = "comfy-trickle:"


def is_frame_client(client_id: object) -> bool:
    """Whether a ComfyUI client id is a stream's, the one its frame prompts are queued under."""
    return isinstance(client_id, str) and client_id.startswith(FRAME_CLIENT_PREFIX)

logger = logging.getLogger(__name__)

POLL_FIRST_S = 0.02
POLL_MAX_S = 0.25
DRAIN_TIMEOUT_S = 10.0
# Frames up to this size are prepared on the event loop (about 0.2 ms of numpy at 512x512), larger ones
# in a worker thread so the loop that serves every stream's network I/O is never held up for long.
INLINE_PREPARE_MAX_PIXELS = 512 * 512


def _pixels(frame: InputFrame) -> int:
    shape = frame.shape
    if shape is None or len(shape) < 2:
        return INLINE_PREPARE_MAX_PIXELS + 1  # unknown size: keep it off the loop
    return int(shape[0]) * int(shape[1]) * len(frames_of(frame))


@dataclass(slots=True)
class QueuedFrame:
    """A frame whose prompt is in ComfyUI's queue (``frame``: the one it runs; a newer one once the prompt
    started, when the stream is overloaded)."""

    frame: InputFrame
    ticket: int
    prompt_id: str
    waiter: asyncio.Future[None]


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
        frames_per_prompt: Callable[[], int] | None = None,
        first_frame_timeout_s: Callable[[], float] | None = None,
    ) -> None:
        # live control (``streams.updates``, ``streams.warmup``): between two frames the pump asks
        # ``next_generation`` for a newer workflow; while ``warming()``, a slow frame is covered, for up
        # to ``first_frame_timeout_s()`` seconds
        self._next_generation = next_generation
        self._generation = 1
        self._cover = cover
        self._warming = warming
        self._first_frame_timeout_s = first_frame_timeout_s
        self._warm_up = WarmupClock()
        self._outputless_prompts = 0  # in a row, see streams.warmup
        self._frames_per_prompt = frames_per_prompt  # the most frames one prompt may take (see above)
        self._context = context
        self._runner = context.runner
        self._builder = builder
        self._bridge = bridge
        self._handoff = handoff
        self._counters = counters
        self._client_id = FRAME_CLIENT_PREFIX + builder.stream_id
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[int, asyncio.Future[None]] = {}
        # prompts whose output arrived but which ComfyUI may still be finishing: (prompt id, ticket)
        self._finishing: collections.deque[tuple[str, int]] = collections.deque()
        self._current: QueuedFrame | None = None  # the frame whose output the pump waits for
        self._ahead: QueuedFrame | None = None  # the next frame, queued behind it (see the docstring)

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
        fairness, stream_id = self._context.fairness, self._builder.stream_id
        self._handoff.watch_ready(lambda ready: fairness.set_ready(stream_id, ready))
        while True:
            failure = self._reap_finishing()
            if failure is not None:
                return failure
            queued, self._ahead = self._ahead, None
            if queued is None:
                frame = await self._handoff.get(self._batch_limit())
                if frame is None:
                    break
                queued = await self._queue_frame(frame)
            failure = await self._finish_frame(queued)
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
            self._warm_up.restart()
            self._outputless_prompts = 0

    def warm_up_status(self) -> dict[str, float] | None:
        """The status's ``warm_up``: how long the current generation has waited for its first frame."""
        if self._warming is None or self._first_frame_timeout_s is None or not self._warming():
            return None
        return self._warm_up.status(self._first_frame_timeout_s())

    async def _prepare(self, frame: InputFrame) -> None:
        """CPU work for this frame (RGB, uint8 -> float tensor) off ComfyUI's shared executor thread,
        unless the stream is overloaded: its prompt will likely start with a newer frame (``_fresher``),
        and ``TrickleInput`` converts the frame it runs."""
        prepare_frame = self._context.prepare_frame
        if prepare_frame is None or self._handoff.newest_first:
            return
        # A small frame is prepared right here: the round trip through a worker thread costs about as
        # much CPU as the work itself (0.14 vs 0.21 ms at 512x512 on 2 cores) plus two wake-ups.
        if _pixels(frame) <= INLINE_PREPARE_MAX_PIXELS:
            prepare_frame(frame)
        else:
            await asyncio.to_thread(prepare_frame, frame)

    async def _queue_frame(self, frame: InputFrame, behind: str | None = None) -> QueuedFrame:
        """Prepare the frame and queue its prompt (``behind``: the id of the stream's prompt it follows)."""
        assert self._loop is not None  # noqa: S101 - set by run()
        self._switch_generation()
        self._gather_batch(frame)
        await self._prepare(frame)
        withdraw_if = None
        if behind is not None:
            runner = self._runner

            def withdraw_if() -> bool:
                return runner.outcome(behind).state is PromptState.ERROR

        queued = QueuedFrame(frame, 0, "", self._loop.create_future())
        fresher = None if frame.followers else (lambda: self._fresher(queued))
        queued.ticket = ticket = self._bridge.open_ticket(frame, withdraw_if, fresher)
        self._waiters[ticket] = queued.waiter
        try:
            await self._context.fairness.turn(self._builder.stream_id)  # fair share (streams.fairness)
            queued.prompt_id = self._submit(frame, ticket)
        except BaseException:
            self._waiters.pop(ticket, None)
            self._bridge.close_ticket(ticket)
            raise
        return queued

    def _fresher(self, queued: QueuedFrame) -> InputFrame | None:
        """When ``queued``'s prompt starts (ComfyUI's worker thread): the frame it runs, a newer one if
        the stream is overloaded, None if it must not run (``FrameHandoff.fresher``); never swapped while
        a warm-up is covered (each of its frames is claimed by its own placeholder)."""
        if self._warming is not None and self._warming():
            return queued.frame
        newer = self._handoff.fresher(queued.frame)
        if newer is None or newer is queued.frame:
            return newer
        newer.extra[GENERATION_KEY] = queued.frame.extra.get(GENERATION_KEY, self._generation)
        stamps = newer.stamps
        stamps.queued = time.perf_counter()
        if stamps.handoff is not None:
            self._counters.stage(Stage.HANDOFF_WAIT, stamps.queued - stamps.handoff)
        queued.frame = newer
        return newer

    def _batch_limit(self) -> int:
        return 1 if self._frames_per_prompt is None else max(1, self._frames_per_prompt())

    def _gather_batch(self, frame: InputFrame) -> None:
        """Let the frames already waiting behind ``frame`` share its prompt (see the module docstring)."""
        limit = self._batch_limit()
        if limit <= 1 or (self._warming is not None and self._warming()):
            return
        frame.followers = self._handoff.take_following(limit - 1, frame)

    async def _finish_frame(self, queued: QueuedFrame) -> PromptOutcome | None:
        """Wait for the frame's output or its prompt's end; a node's failure is returned."""
        self._current = queued
        try:
            outcome = await self._await_frame(queued)
        finally:
            self._waiters.pop(queued.ticket, None)
        # (left set if cancelled: ``abandon`` then forgets the prompt)
        self._current = None
        prompt_id, ticket = queued.prompt_id, queued.ticket
        if outcome is None:
            self._outputless_prompts = 0
            self._finishing.append((prompt_id, ticket))
            return None
        if outcome.state is PromptState.ERROR:
            self._withdraw_ahead()  # before the failed prompt's history goes (its check reads it)
        self._bridge.close_ticket(ticket)
        self._runner.forget(prompt_id)
        if outcome.state is PromptState.ERROR:
            return outcome
        # interrupted, lost, or finished without reaching TrickleOutput: its frames are dropped
        dropped = len(frames_of(queued.frame))
        logger.info("stream %s: %d frame(s) dropped (%s)", self._bridge.stream_id, dropped,
                    outcome.state.value)
        self._counters.frame_dropped(dropped)
        if outcome.state is PromptState.SUCCESS:
            self._outputless_prompts += 1
            if self._outputless_prompts >= NO_OUTPUT_LIMIT:
                self._withdraw_ahead()
                return PromptOutcome(PromptState.ERROR, message=no_output_message(self._outputless_prompts))
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
        self._counters.prompt_queued()
        return prompt_id

    async def _await_frame(self, queued: QueuedFrame) -> PromptOutcome | None:
        """None once the output arrived; otherwise the outcome of a prompt that ended without one.
        Meanwhile the stream's next frame may be queued ahead (see the module docstring)."""
        delay = POLL_FIRST_S
        started = time.monotonic()
        waiter, next_frame = queued.waiter, None
        look_ahead = True  # until the input has no more frames
        try:
            while True:
                warming = self._warming is not None and self._warming()
                covering = warming and self._cover is not None
                wait = min(delay, COVER_TICK_S) if covering else delay
                if look_ahead and next_frame is None and self._may_look_ahead(covering):
                    next_frame = asyncio.ensure_future(self._handoff.wait_for_frame())
                waits = {waiter} if next_frame is None else {waiter, next_frame}
                await asyncio.wait(waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                if waiter.done():
                    return None
                if next_frame is not None and next_frame.done():
                    look_ahead, next_frame = next_frame.result(), None
                    if look_ahead and self._may_look_ahead(covering):
                        await self._queue_ahead(queued)
                    continue  # the output may have come meanwhile; the timeout starts again
                if covering and time.monotonic() - started >= COVER_AFTER_S:
                    self._cover_waiting(queued.frame)
                gave_up = self._first_frame_overdue(warming)
                if gave_up is not None:
                    return gave_up
                outcome = self._runner.outcome(queued.prompt_id)
                if outcome.finished:
                    # the output may have been scheduled between the timeout and the look-up
                    await asyncio.sleep(0)
                    return None if waiter.done() else outcome
                delay = min(delay * 2, POLL_MAX_S)
        finally:
            if next_frame is not None:
                next_frame.cancel()

    def _first_frame_overdue(self, warming: bool) -> PromptOutcome | None:
        """The stream's failure once the warming generation has waited past its first-frame timeout."""
        waited = self._warm_up.waited(warming)
        timeout_s = self._first_frame_timeout_s() if self._first_frame_timeout_s is not None else None
        if timeout_s is None or waited < timeout_s:
            return None
        covered = self._cover.frames_covered if self._cover is not None else 0
        return PromptOutcome(PromptState.ERROR, message=first_frame_timed_out(timeout_s, covered))

    def _may_look_ahead(self, covering: bool) -> bool:
        return (
            self._ahead is None
            and not covering
            and not self._context.fairness.others_ready(self._builder.stream_id)
        )

    async def _queue_ahead(self, behind: QueuedFrame) -> None:
        frame = self._handoff.take_nowait(self._batch_limit())
        if frame is None:
            return
        self._ahead = await self._queue_frame(frame, behind=behind.prompt_id)

    def _withdraw_ahead(self) -> None:
        """The ahead frame never runs: the prompt it waits behind failed (see the docstring), or the
        stream stops. Its frames count as dropped."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            self._waiters.pop(ahead.ticket, None)
            self._bridge.close_ticket(ahead.ticket)
            self._runner.forget(ahead.prompt_id)
            self._counters.frame_dropped(len(frames_of(ahead.frame)))

    def _cover_waiting(self, frame: InputFrame) -> None:
        """The warming generation is slow: ``frame`` and every newer frame go out as placeholders."""
        assert self._cover is not None  # noqa: S101 - only called while covering
        for batched in frames_of(frame):  # (a batch queued before the warm-up began)
            self._cover.cover(batched if batched is not frame else replace(frame, followers=()))
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
            if outcome.state is PromptState.ERROR and failure is None:
                self._withdraw_ahead()  # before the failed prompt's history goes (its check reads it)
                failure = outcome
            self._bridge.close_ticket(ticket)
            self._runner.forget(prompt_id)
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
        self._withdraw_ahead()  # queued, never to come out (like the frames left in the hand-off)
        pending = list(self._finishing)
        if self._current is not None:
            pending.append((self._current.prompt_id, self._current.ticket))
        self._current = None
        self._finishing.clear()
        for prompt_id, ticket in pending:
            self._bridge.close_ticket(ticket)
            self._runner.forget(prompt_id)
