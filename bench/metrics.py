"""Turn what the gateway sent and received into figures: fps, drops, latency percentiles, first frame."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from .gateway import FeedLog, ReceiveLog

SERIES_POINTS = 1500


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear-interpolated percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 1)


def stream_metrics(
    feed: FeedLog, received: ReceiveLog, warmup_s: float, start_requested: float | None = None
) -> dict[str, Any]:
    """Figures of one stream.

    * ``out_fps``: distinct frames decoded from the output per second over the steady window (from
      ``warmup_s`` after the feed started to the end of the feed); ``in_fps`` the same for what was fed.
    * ``dropped``: frames fed that never came out (after the drain); ``drop_pct`` of those fed.
    * ``latency_ms``: glass to glass, fed (last byte written to the relay) -> decoded from the output,
      for frames fed after the warm-up; p50/p95/max.
    * ``first_output_s``: first output frame decoded after ``start_requested`` (the /stream/start request).
    """
    started = feed.started or 0.0
    finished = feed.finished or started
    window_start = started + warmup_s
    window = max(1e-6, finished - window_start)
    first_seen: dict[int, float] = {}
    duplicates = 0
    for index, decoded_at in received.frames:
        if index in first_seen:
            duplicates += 1
        else:
            first_seen[index] = decoded_at
    fed = feed.sent
    came_out = [index for index in fed if index in first_seen]
    latencies = [first_seen[i] - fed[i] for i in came_out if fed[i] >= window_start]
    # (seconds since the feed started, latency ms) of every frame that came out: spikes show as runs
    series = sorted(
        (round(fed[i] - started, 3), round((first_seen[i] - fed[i]) * 1000.0, 1)) for i in came_out
    )
    out_in_window = sum(1 for t in first_seen.values() if window_start <= t <= finished)
    in_in_window = sum(1 for t in fed.values() if window_start <= t <= finished)
    dropped = len(fed) - len(came_out)
    first_output = received.first_frame_time
    return {
        "fed": len(fed),
        "received": len(came_out),
        "foreign_frames": len([i for i in first_seen if i not in fed]),
        "duplicates": duplicates,
        "unreadable": received.unreadable,
        "dropped": dropped,
        "drop_pct": round(100.0 * dropped / len(fed), 2) if fed else None,
        "in_fps": round(in_in_window / window, 2),
        "out_fps": round(out_in_window / window, 2),
        "latency_ms": {
            "p50": _ms(percentile(latencies, 0.50)),
            "p95": _ms(percentile(latencies, 0.95)),
            "max": _ms(max(latencies) if latencies else None),
            "samples": len(latencies),
        },
        "latency_series": [list(point) for point in series[:: max(1, len(series) // SERIES_POINTS)]],
        "first_output_s": (
            round(first_output - start_requested, 3)
            if first_output is not None and start_requested is not None
            else None
        ),
    }


def median_of(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None
