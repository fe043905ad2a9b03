"""``GET /metrics`` for operators: Prometheus text from ``prometheus_client``, one ``CollectorRegistry``
per worker (never the library's global one, so nothing leaks between workers or tests).

Per stream (label ``stream``): fps in/out, frames dropped, glass-to-glass latency histogram (arrival of a
frame -> its output written, fed per frame through ``StreamCounters.on_latency``), executor time share
(the workflow stage's mean seconds per frame x output fps: the fraction of wall time ComfyUI's executor
spends on this stream's nodes), session and pipeline state. Per process: streams running, free slots.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .worker import ACTIVE_STATES, LivepeerWorker

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
STREAM_STATES = ("starting", "running", "stopping", "stopped", "completed", "error")


class WorkerMetrics:
    def __init__(self, worker: LivepeerWorker) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "comfy_trickle_stream_latency_seconds",
            "Glass-to-glass latency: a frame's arrival to its output written",
            ["stream"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.registry.register(_StreamCollector(worker))

    def attach(self, stream_id: str, counters: Any) -> None:
        """Feed the latency histogram from a stream's counters (every frame written)."""
        child = self.latency.labels(stream_id)
        counters.on_latency = child.observe

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StreamCollector(Collector):
    def __init__(self, worker: LivepeerWorker) -> None:
        self._worker = worker

    def describe(self) -> list[Metric]:
        return []  # collected live: stream labels come and go

    def collect(self) -> Iterator[Metric]:
        statuses = self._worker.registry.statuses()
        pipeline_states = self._worker.pipeline_states()
        stream = ["stream"]
        fps_in = GaugeMetricFamily("comfy_trickle_stream_fps_in", "Input frames per second", labels=stream)
        fps_out = GaugeMetricFamily("comfy_trickle_stream_fps_out", "Output frames per second", labels=stream)
        dropped = CounterMetricFamily("comfy_trickle_stream_frames_dropped", "Frames dropped", labels=stream)
        share = GaugeMetricFamily("comfy_trickle_stream_executor_share",
                                  "Fraction of wall time the executor spends on this stream's nodes",
                                  labels=["stream"])
        state = GaugeMetricFamily("comfy_trickle_stream_state", "1 for the stream's current session state",
                                  labels=["stream", "state"])
        pipeline = GaugeMetricFamily(
            "comfy_trickle_stream_pipeline_state", "1 for the stream's ai-runner pipeline state",
            labels=["stream", "state"],
        )
        for stream_id, status in statuses.items():
            counters = status.get("counters") or {}
            fps_in.add_metric([stream_id], float(counters.get("fps_in") or 0.0))
            fps_out.add_metric([stream_id], float(counters.get("fps_out") or 0.0))
            dropped.add_metric([stream_id], float(counters.get("frames_dropped") or 0))
            share.add_metric([stream_id], _executor_share(counters))
            for name in STREAM_STATES:
                state.add_metric([stream_id, name], 1.0 if status.get("state") == name else 0.0)
            if stream_id in pipeline_states:
                pipeline.add_metric([stream_id, pipeline_states[stream_id]], 1.0)
        running = sum(1 for s in statuses.values() if s.get("state") in ACTIVE_STATES)
        yield from (fps_in, fps_out, dropped, share, state, pipeline)
        yield GaugeMetricFamily("comfy_trickle_streams_running", "Streams running", value=running)
        free = self._worker.free_slots()
        yield GaugeMetricFamily("comfy_trickle_free_slots", "Free stream slots", value=free)


def _executor_share(counters: dict[str, Any]) -> float:
    workflow = ((counters.get("stage_ms") or {}).get("workflow") or {}).get("mean")
    fps_out = counters.get("fps_out") or 0.0
    if not workflow or not fps_out:
        return 0.0
    return round(min(1.0, workflow / 1000.0 * fps_out), 4)
