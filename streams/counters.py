"""Per-stream counters: frames in/processed/out/dropped, fps in/out, latency p50/p95, uptime, and the
per-frame time of each engine stage (``stages.Stage``, see ``StreamCounters.stage``).

Updated from several threads (decoder, ComfyUI's worker, encoder), so every method takes a lock; each
is a few integer operations, cheap next to a video frame.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from .stages import Stage

# fps: frames over the last FPS_WINDOW_S seconds of *media* time (the frames' own timestamps)
FPS_WINDOW_S = 4.0
FPS_MAX_FRAMES = 2048  # far above any window's worth of real video (4 s at 240 fps is 960)
# arrival may lag media time by about one trickle segment (a segment's frames land together)
FPS_ARRIVAL_SLACK_S = 2.0
# no frame for this long: the rate is 0 (the input stalled or the workflow stopped producing)
FPS_STALL_S = 3.0
LATENCY_SAMPLES = 300
# each stage (``stages.Stage``) keeps its last STAGE_SAMPLES per-frame durations
STAGE_SAMPLES = 300


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty list)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[rank]


class FrameRateMeter:
    """Frames per second of video, from the frames' timestamps, steady under bursty arrival.

    Trickle delivers video a segment at a time, so frames reach us in bursts (a whole second of video
    within milliseconds, then nothing); counting arrivals per wall-clock second swings between far above
    and far below the real rate. Instead the rate is the number of frames whose media time lies in the
    last ``window_s`` seconds of media time, divided by the media time they span: a 30 fps source reads
    30 however its segments land, and frames missing from the video (skipped segments, drops) lower it.
    Two wall-clock guards keep it honest: when the frames of the window took longer to arrive than
    they span by more than ``FPS_ARRIVAL_SLACK_S`` (more than a segment's burst), that longer time is the
    divisor, so a consumer well behind real time reads its real rate (one slightly behind reads the
    video's rate until the hand-off's backlog bound drops frames, which then lower it); and after
    ``FPS_STALL_S`` without a frame the rate is 0. A timestamp going backwards or jumping ahead by more
    than the window (a source restart) starts the window afresh. Frames without a media time fall back
    to their arrival time.
    """

    def __init__(self, clock: Callable[[], float], window_s: float = FPS_WINDOW_S) -> None:
        self._clock = clock
        self._window_s = window_s
        # (media time, arrival); the cap bounds memory when a source repeats one timestamp forever
        self._frames: collections.deque[tuple[float, float]] = collections.deque(maxlen=FPS_MAX_FRAMES)

    def tick(self, media_time: float | None = None) -> None:
        now = self._clock()
        media = now if media_time is None else float(media_time)
        if self._frames:
            newest = self._frames[-1][0]
            if media < newest - 0.001 or media > newest + self._window_s:
                self._frames.clear()  # the timeline restarted
        self._frames.append((media, now))
        while media - self._frames[0][0] > self._window_s:
            self._frames.popleft()

    def rate(self) -> float:
        """Frames per second (0 until two frames arrived, and after a stall)."""
        if len(self._frames) < 2 or self._clock() - self._frames[-1][1] > FPS_STALL_S:
            return 0.0
        media_span = self._frames[-1][0] - self._frames[0][0]
        arrival_span = self._frames[-1][1] - self._frames[0][1]
        # more than a segment's burst behind: frames came slower than the video runs, count real time
        span = arrival_span if arrival_span > media_span + FPS_ARRIVAL_SLACK_S else media_span
        if span <= 0.05:  # too early for a meaningful figure
            return 0.0
        return (len(self._frames) - 1) / span


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
        self.prompts = 0  # frame prompts queued (fewer than frames_processed when frames share prompts)
        self._dropped_elsewhere = 0
        self._dropped_sources: list[Callable[[], int]] = []
        self._fps_in = FrameRateMeter(clock)
        self._fps_out = FrameRateMeter(clock)
        self._latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_SAMPLES)
        # per-frame latency observer (seconds; the /metrics histogram), called on the egress thread
        self.on_latency: Callable[[float], None] | None = None
        self._stages: dict[Stage, collections.deque[float]] = {
            stage: collections.deque(maxlen=STAGE_SAMPLES) for stage in Stage
        }

    def add_drop_source(self, read: Callable[[], int]) -> None:
        """Count drops that another component keeps (e.g. the hand-off's ``dropped``)."""
        self._dropped_sources.append(read)

    def frame_in(self, media_time: float | None = None) -> None:
        """A frame was decoded; ``media_time`` is its pts in seconds (see ``FrameRateMeter``)."""
        with self._lock:
            self.frames_in += 1
            self._fps_in.tick(media_time)

    def prompt_queued(self) -> None:
        with self._lock:
            self.prompts += 1

    def frame_processed(self, count: int = 1) -> None:
        """``count`` frames came out of their prompt (one batch)."""
        with self._lock:
            self.frames_processed += count

    def frame_dropped(self, count: int = 1) -> None:
        with self._lock:
            self._dropped_elsewhere += count

    def frame_out(self, arrival: float | None, media_time: float | None = None) -> None:
        """An output frame was written; ``arrival`` is its input frame's monotonic arrival time,
        ``media_time`` the output frame's pts in seconds."""
        with self._lock:
            self.frames_out += 1
            self._fps_out.tick(media_time)
            latency = None if arrival is None else self._clock() - arrival
            if latency is not None:
                self._latencies.append(latency)
        if latency is not None and self.on_latency is not None:
            self.on_latency(latency)

    def stage(self, stage: Stage, seconds: float) -> None:
        """One frame spent ``seconds`` in ``stage`` (any thread; anything but a ``Stage`` is a KeyError)."""
        samples = self._stages[stage]
        with self._lock:
            samples.append(max(0.0, seconds))

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
            stages = {stage.value: list(samples) for stage, samples in self._stages.items()}
            end = self._finished if self._finished is not None else self._clock()
            running = self._finished is None
            counters: dict[str, Any] = {
                "frames_in": self.frames_in,
                "frames_processed": self.frames_processed,
                "frames_out": self.frames_out,
                "frames_dropped": self.frames_dropped,
                "prompts": self.prompts,
                "fps_in": round(self._fps_in.rate(), 2) if running else 0.0,
                "fps_out": round(self._fps_out.rate(), 2) if running else 0.0,
                "latency_ms": {
                    "p50": round(percentile(latencies, 0.50) * 1000.0, 1),
                    "p95": round(percentile(latencies, 0.95) * 1000.0, 1),
                },
                "uptime_s": round(end - self._started, 2),
            }
        # sorted outside the lock: the threads recording frames never wait on a status request
        counters["stage_ms"] = {name: _summary_ms(samples) for name, samples in stages.items()}
        return counters


def _summary_ms(seconds: list[float]) -> dict[str, float | None]:
    """Mean, p50 and p95 in milliseconds of durations in seconds (None without samples)."""
    sorted_seconds = sorted(seconds)
    if not sorted_seconds:
        return {"mean": None, "p50": None, "p95": None}
    return {
        "mean": round(1000.0 * sum(sorted_seconds) / len(sorted_seconds), 3),
        "p50": round(1000.0 * percentile(sorted_seconds, 0.50), 3),
        "p95": round(1000.0 * percentile(sorted_seconds, 0.95), 3),
    }
