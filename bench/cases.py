"""One benchmark case: N streams through one pipeline for a fixed time, measured by the fake gateway.

Order of a case (every step bounded in time):

1. create each stream's channels on the relay (``in``, ``out``, ``control``, ``events``), start a
   receiver on each ``out``;
2. start the pipeline's streams and let them settle (startup cases skip this: there the feed runs first
   and ``/stream/start`` comes one second into it, as when a gateway starts a runner on a live input);
3. feed every ``in`` for ``seconds`` while sampling CPU/RSS of the pipeline, relay and gateway;
4. end the input (DELETE ``in``: the pipeline may flush a frame it held) and drain: wait until no output
   arrived for ``DRAIN_IDLE_S`` and every stream put out a frame (at most ``DRAIN_MAX_S``);
5. stop the pipeline's streams (ours: ``/stream/{id}/stop``, which returns the engine's counters), delete
   the remaining channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import aiohttp

from .gateway import OutputReceiver, SourceFeeder, create_channel, delete_channel
from .metrics import median_of, stream_metrics
from .procs import UsageSampler
from .source import EncodedSource

logger = logging.getLogger(__name__)

SETTLE_S = 1.0
LIVE_BEFORE_START_S = 1.0
DRAIN_IDLE_S = 1.0
DRAIN_MAX_S = 6.0
CHANNELS = ("in", "out", "control", "events")


@dataclass(frozen=True)
class CaseSpec:
    """What one case runs. ``fps`` None feeds as fast as the relay takes the bytes."""

    kind: str  # throughput | unpaced | latency | overload | startup | scaling
    pipeline: str  # ours | pytrickle
    workflow: str  # passthrough | invert
    width: int
    height: int
    fps: float | None
    streams: int = 1
    seconds: float = 8.0
    warmup_s: float = 2.0

    @property
    def name(self) -> str:
        rate = "unpaced" if self.fps is None else f"{self.fps:g}fps"
        streams = f"-x{self.streams}" if self.streams > 1 else ""
        return f"{self.kind}-{self.pipeline}-{self.workflow}-{self.width}x{self.height}-{rate}{streams}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "name": self.name}


class Pipeline(Protocol):
    name: str

    def pids(self) -> dict[str, int]: ...

    async def start_stream(
        self,
        session: aiohttp.ClientSession,
        stream_id: str,
        urls: dict[str, str],
        workflow: str,
        width: int,
        height: int,
        fps: float,
    ) -> float: ...

    async def wait_ready(self, stream_id: str) -> None: ...

    async def stop_stream(self, session: aiohttp.ClientSession, stream_id: str) -> dict[str, Any]: ...


def _loadavg() -> list[float]:
    try:
        return [float(x) for x in open("/proc/loadavg").read().split()[:3]]  # noqa: SIM115 - tiny read
    except OSError:
        return []


async def _drain(receivers: list[OutputReceiver]) -> None:
    """Until no output arrived for ``DRAIN_IDLE_S`` and every stream put out a frame, at most
    ``DRAIN_MAX_S``: a pipeline slow to start (pytrickle's peer, about 2 s on a slow machine) may put out
    its first frames only after a short feed ended."""
    started = time.monotonic()
    while time.monotonic() < started + DRAIN_MAX_S:
        newest = max((r.log.frames[-1][1] for r in receivers if r.log.frames), default=started)
        if all(r.log.frames for r in receivers) and time.monotonic() - newest >= DRAIN_IDLE_S:
            return
        await asyncio.sleep(0.1)


async def run_case(
    spec: CaseSpec, pipeline: Pipeline, relay_url: str, relay_pid: int, source: EncodedSource
) -> dict[str, Any]:
    """Run ``spec`` once; returns per-stream figures, their aggregate, usage and the engine's counters."""
    tag = uuid.uuid4().hex[:6]
    stream_ids = [f"bench-{tag}-{k}" for k in range(spec.streams)]
    urls = {sid: {ch: f"{relay_url}{sid}-{ch}" for ch in CHANNELS} for sid in stream_ids}
    feed_fps = spec.fps if spec.fps is not None else source.fps
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    load_before = _loadavg()
    async with aiohttp.ClientSession(connector=connector) as session:
        for sid in stream_ids:
            for channel in CHANNELS:
                mime = "video/MP2T" if channel in ("in", "out") else "application/json"
                await create_channel(session, urls[sid][channel], mime)
        size = (source.width, source.height)
        receivers = {sid: OutputReceiver(session, urls[sid]["out"], size) for sid in stream_ids}
        receive_tasks = [asyncio.create_task(r.run()) for r in receivers.values()]
        feeders = {
            sid: SourceFeeder(session, urls[sid]["in"], source, spec.fps, spec.seconds) for sid in stream_ids
        }
        start_requested: dict[str, float] = {}
        sampler: UsageSampler | None = None
        final: dict[str, dict[str, Any]] = {}
        try:
            if spec.kind == "startup":
                feed_tasks = [asyncio.create_task(f.run()) for f in feeders.values()]
                await asyncio.sleep(LIVE_BEFORE_START_S)
                for sid in stream_ids:
                    start_requested[sid] = await pipeline.start_stream(
                        session, sid, urls[sid], spec.workflow, spec.width, spec.height, feed_fps
                    )
                pids = {**pipeline.pids(), "relay": relay_pid, "gateway": os.getpid()}
                sampler = UsageSampler(pids)
                sampler.start()
            else:
                for sid in stream_ids:
                    start_requested[sid] = await pipeline.start_stream(
                        session, sid, urls[sid], spec.workflow, spec.width, spec.height, feed_fps
                    )
                for sid in stream_ids:
                    await pipeline.wait_ready(sid)
                await asyncio.sleep(SETTLE_S)
                pids = {**pipeline.pids(), "relay": relay_pid, "gateway": os.getpid()}
                sampler = UsageSampler(pids)
                sampler.start()
                feed_tasks = [asyncio.create_task(f.run()) for f in feeders.values()]
            await asyncio.gather(*feed_tasks)
            # end of input first, as a gateway does: a pipeline may hold its last frame until it knows
            # no more bytes follow (a demuxer cannot tell a PES is complete before the next one starts)
            for sid in stream_ids:
                await delete_channel(session, urls[sid]["in"])
            await _drain(list(receivers.values()))
            usage = sampler.stop()
            sampler = None
            stops = await asyncio.gather(
                *(pipeline.stop_stream(session, sid) for sid in stream_ids), return_exceptions=True
            )
            for sid, result in zip(stream_ids, stops, strict=True):
                final[sid] = result if isinstance(result, dict) else {"error": repr(result)}
        finally:
            if sampler is not None:
                sampler.stop()
            for task in receive_tasks:
                task.cancel()
            for task in receive_tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for sid in stream_ids:
                for channel in CHANNELS:
                    with contextlib.suppress(aiohttp.ClientError):
                        await delete_channel(session, urls[sid][channel])
    per_stream = []
    for sid in stream_ids:
        figures = stream_metrics(
            feeders[sid].log, receivers[sid].log, spec.warmup_s, start_requested.get(sid)
        )
        if spec.pipeline == "pytrickle":
            peer = (final.get(sid) or {}).get("peer") or {}
            started = peer.get("client_started")
            first = receivers[sid].log.first_frame_time
            # pytrickle has no start request; count from its client.start() (imports excluded)
            figures["first_output_s"] = round(first - started, 3) if first and started else None
        figures["engine"] = final.get(sid)
        per_stream.append(figures)
    return {
        "spec": spec.as_dict(),
        "streams": per_stream,
        "aggregate": aggregate(per_stream),
        "usage": {name: asdict(u) for name, u in usage.items()},
        "loadavg_before": load_before,
        "loadavg_after": _loadavg(),
    }


def aggregate(per_stream: list[dict[str, Any]]) -> dict[str, Any]:
    """Across the streams of one case: mean/min output fps, total drops, median of the latency figures."""
    fed = sum(s["fed"] for s in per_stream)
    dropped = sum(s["dropped"] for s in per_stream)
    out_fps = [s["out_fps"] for s in per_stream]
    return {
        "out_fps_mean": round(sum(out_fps) / len(out_fps), 2),
        "out_fps_min": min(out_fps),
        "out_fps_total": round(sum(out_fps), 2),  # processed frames a second, all streams together
        # the slowest stream's share of a fair one: 1.0 when drops are spread evenly
        "fairness": round(min(out_fps) / (sum(out_fps) / len(out_fps)), 3) if sum(out_fps) else None,
        "in_fps_mean": round(sum(s["in_fps"] for s in per_stream) / len(per_stream), 2),
        "fed": fed,
        "dropped": dropped,
        "drop_pct": round(100.0 * dropped / fed, 2) if fed else None,
        "latency_p50_ms": median_of(s["latency_ms"]["p50"] for s in per_stream),
        "latency_p95_ms": median_of(s["latency_ms"]["p95"] for s in per_stream),
        "latency_max_ms": max((s["latency_ms"]["max"] or 0.0) for s in per_stream),
        "first_output_s": median_of(s["first_output_s"] for s in per_stream),
    }
