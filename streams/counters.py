"""Per-stream counters: frames in/processed/out/dropped, fps in/out, latency p50/p95, uptime.

Updated from several threads (decoder, ComfyUI's worker, encoder), so every method takes a lock; each
is a few integer operations, cheap next to a video frame.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

FPS_WINDOW_S = 2.0
LATENCY_SAMPLES = 300


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty list)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[rank]


class RateMeter:
    """Events per second over the last ``window_s`` seconds."""

    def __init__(self, clock: Callable[[], float], window_s: float = FPS_WINDOW_S) -> None:
        self._clock = clock
        self._window_s = window_s
        self._first: float | None = None
        self._times: collections.deque[float] = collections.deque()

    def tick(self) -> None:
        now = self._clock()
        if self._first is None:
            self._first = now
        self._times.append(now)
        self._trim(now)

    def rate(self) -> float:
        """Events in the window divided by the window (or by the time since the first event, early on)."""
        if self._first is None:
            return 0.0
        now = self._clock()
        self._trim(now)
        elapsed = min(self._window_s, now - self._first)
        if elapsed <= 0.05:  # too early for a meaningful figure
            return 0.0
        return len(self._times) / elapsed

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self._window_s:
            self._times.popleft()


class StreamCounters:
    """Thread-safe counters of one stream, rendered by ``snapshot()`` in the status shape."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._finished: float | None = None
        self.frames_in = 0
        self.frames_processed = 0
        self.frames_out = 0
        self._dropped_elsewhere = 0
        self._dropped_sources: list[Callable[[], int]] = []
        self._fps_in = RateMeter(clock)
        self._fps_out = RateMeter(clock)
        self._latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_SAMPLES)

    def add_drop_source(self, read: Callable[[], int]) -> None:
        """Count drops that another component keeps (e.g. the hand-off's ``dropped``)."""
        self._dropped_sources.append(read)

    def frame_in(self) -> None:
        with self._lock:
            self.frames_in += 1
            self._fps_in.tick()

    def frame_processed(self) -> None:
        with self._lock:
            self.frames_processed += 1

    def frame_dropped(self, count: int = 1) -> None:
        with self._lock:
            self._dropped_elsewhere += count

    def frame_out(self, arrival: float | None) -> None:
        """An output frame was written; ``arrival`` is its input frame's monotonic arrival time."""
        with self._lock:
            self.frames_out += 1
            self._fps_out.tick()
            if arrival is not None:
                self._latencies.append(self._clock() - arrival)

    def finish(self) -> None:
        """Freeze uptime (the stream stopped)."""
        with self._lock:
            if self._finished is None:
                self._finished = self._clock()

    @property
    def frames_dropped(self) -> int:
        return self._dropped_elsewhere + sum(read() for read in self._dropped_sources)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            latencies = sorted(self._latencies)
            end = self._finished if self._finished is not None else self._clock()
            running = self._finished is None
            return {
                "frames_in": self.frames_in,
                "frames_processed": self.frames_processed,
                "frames_out": self.frames_out,
                "frames_dropped": self.frames_dropped,
                "fps_in": round(self._fps_in.rate(), 2) if running else 0.0,
                "fps_out": round(self._fps_out.rate(), 2) if running else 0.0,
                "latency_ms": {
                    "p50": round(percentile(latencies, 0.50) * 1000.0, 1),
                    "p95": round(percentile(latencies, 0.95) * 1000.0, 1),
                },
                "uptime_s": round(end - self._started, 2),
            }
