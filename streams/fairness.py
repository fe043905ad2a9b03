"""Executor time per stream, and fair turns on ComfyUI's one executor (issue 13 §9).

Accounting: ComfyUI runs one prompt at a time, so the time from when a stream's prompt could start (it
was queued, and the previous prompt of any stream had delivered its output) to its output is that
stream's executor time. A user prompt in between is charged to the next stream prompt (the executor
cannot tell us otherwise without patching it). ``share(stream)`` is the stream's part of all streams'
executor time over the last ``window_s`` seconds; status shows it as ``executor_share``.

Scheduling: a stream whose share is over ``1/N`` (N = live streams) waits before queueing its next prompt
while another stream has a frame ready and not yet queued (in its hand-off, or waiting for its own turn),
in ``STEP_S`` steps up to ``max_wait_s`` per frame. A heavy workflow then cannot starve a light one: the
light stream's frames that arrived during a heavy prompt run before the heavy stream's next prompt,
instead of one light frame per heavy prompt. Only a ready frame holds others back (a prompt already
queued does not), so the executor never idles for fairness' sake; with one stream nothing ever waits.
ComfyUI cannot pre-empt a running prompt, so the granularity is one prompt.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable

WINDOW_S = 10.0
MAX_WAIT_S = 1.0
STEP_S = 0.005
SHARE_SLACK = 0.02  # above the fair share by less than this: no wait (saves wake-ups near balance)


class ExecutorFairness:
    """Per-stream executor time over a sliding window, and the wait before a stream's next prompt."""

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        *,
        window_s: float = WINDOW_S,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:
        self._clock = clock
        self._window_s = window_s
        self._max_wait_s = max_wait_s
        self._lock = threading.Lock()  # charges come from ComfyUI's worker thread
        # every stream's charges in the window, oldest first: (at, stream, seconds); with running sums per
        # stream, a share and a prune cost O(1) per charge whatever the number of streams (must_wait runs
        # every STEP_S for every waiting stream)
        self._charges: collections.deque[tuple[float, str, float]] = collections.deque()
        self._window_sums: dict[str, float] = {}
        self._window_total = 0.0
        self._busy_totals: dict[str, float] = {}
        self._ready: set[str] = set()  # streams with a frame in their hand-off (``set_ready``)
        self._at_gate: set[str] = set()
        self._last_done = 0.0
        self.held_s: dict[str, float] = {}  # seconds each stream waited for its turn (bench, tests)

    def add(self, stream_id: str) -> None:
        with self._lock:
            self._window_sums.setdefault(stream_id, 0.0)
            self._busy_totals.setdefault(stream_id, 0.0)

    def remove(self, stream_id: str) -> None:
        with self._lock:
            self._window_total -= self._window_sums.pop(stream_id, 0.0)
            # (once per stream: a later stream of the same id must not inherit its charges)
            self._charges = collections.deque(c for c in self._charges if c[1] != stream_id)
            self._busy_totals.pop(stream_id, None)
            self._ready.discard(stream_id)
            self._at_gate.discard(stream_id)
            self.held_s.pop(stream_id, None)

    def stream_count(self) -> int:
        """How many streams share the executor (any thread)."""
        with self._lock:
            return len(self._window_sums)

    def set_ready(self, stream_id: str, ready: bool) -> None:
        """Whether the stream has a frame ready and not yet queued (its hand-off says so as it fills and
        empties, any thread): others over their share may wait for it."""
        with self._lock:
            if not ready:
                self._ready.discard(stream_id)
            elif stream_id in self._window_sums:
                self._ready.add(stream_id)

    def charge(self, stream_id: str, queued_at: float, done_at: float) -> None:
        """The stream's prompt, queued at ``queued_at``, delivered its output at ``done_at`` (clock time)."""
        with self._lock:
            busy = max(0.0, done_at - max(queued_at, self._last_done))
            self._last_done = max(self._last_done, done_at)
            if stream_id not in self._window_sums:
                return
            self._charges.append((done_at, stream_id, busy))
            self._window_sums[stream_id] += busy
            self._window_total += busy
            self._busy_totals[stream_id] += busy
            self._prune(done_at)

    def share(self, stream_id: str) -> float:
        """The stream's part (0..1) of all streams' executor time in the window."""
        with self._lock:
            self._prune(self._clock())
            return self._share_locked(stream_id)

    def busy_s(self, stream_id: str) -> float:
        """Executor seconds charged to the stream since it started."""
        with self._lock:
            return self._busy_totals.get(stream_id, 0.0)

    def must_wait(self, stream_id: str) -> bool:
        with self._lock:
            streams = len(self._window_sums)
            if streams < 2 or not self._others_ready(stream_id):
                return False
            self._prune(self._clock())
            return self._share_locked(stream_id) > 1.0 / streams + SHARE_SLACK

    def others_ready(self, stream_id: str) -> bool:
        """Whether another stream has a frame ready and not yet queued (it would use the executor)."""
        with self._lock:
            return self._others_ready(stream_id)

    async def turn(self, stream_id: str) -> float:
        """Wait (bounded) while the stream is over its fair share and another has work; returns seconds."""
        started = time.monotonic()
        waited = 0.0
        with self._lock:
            self._at_gate.add(stream_id)
        try:
            # bounded by elapsed time, not by steps: on a busy event loop a 5 ms sleep takes far longer
            # (counting steps let a 1 s bound last about 4 s per frame)
            while waited < self._max_wait_s and self.must_wait(stream_id):
                await asyncio.sleep(STEP_S)
                waited = time.monotonic() - started
        finally:
            with self._lock:
                self._at_gate.discard(stream_id)
                if waited:
                    self.held_s[stream_id] = self.held_s.get(stream_id, 0.0) + waited
        return waited

    def _others_ready(self, stream_id: str) -> bool:
        others_at_gate = len(self._at_gate) > (stream_id in self._at_gate)
        return others_at_gate or len(self._ready) > (stream_id in self._ready)

    def _share_locked(self, stream_id: str) -> float:
        if self._window_total <= 1e-12:  # (float sums of removed charges leave dust, never a share)
            return 0.0
        return min(1.0, max(0.0, self._window_sums.get(stream_id, 0.0) / self._window_total))

    def _prune(self, now: float) -> None:
        oldest = now - self._window_s
        charges = self._charges
        while charges and charges[0][0] < oldest:
            _, stream_id, seconds = charges.popleft()
            self._window_sums[stream_id] -= seconds
            self._window_total -= seconds
        if not charges:  # reset exactly: no float dust stays behind an empty window
            self._window_total = 0.0
            for stream_id in self._window_sums:
                self._window_sums[stream_id] = 0.0
