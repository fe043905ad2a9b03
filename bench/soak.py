"""Soak (issue 13, item 5; not CI): does ComfyUI's memory, thread and fd count stay flat over time?

Phase 1: two streams (the invert workflow, fed in real time by the synthetic source over our relay) for
``--minutes``. Phase 2: ``--cycles`` start/stop cycles of one stream, each running until it sent a few
frames. RSS, threads and open fds of the ComfyUI process are sampled every ``--interval`` seconds into a
CSV and a PNG (Pillow, as bench/plot.py), and the figures the issue asks for are printed as JSON:
RSS growth over the cycles after the first 20, and threads/fds at the start and end of each phase.

    python -m comfy_trickle.bench.soak --minutes 30 --cycles 200 --out /tmp/soak
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from comfy_trickle.devtools.comfyui_server import start_comfyui
from comfy_trickle.devtools.stream_harness import INVERT, StreamAPI, publish_synthetic
from comfy_trickle.trickle.relay_server import serve_relay
from PIL import Image, ImageDraw, ImageFont

from .procs import rss_bytes

logger = logging.getLogger(__name__)

SIZE = 256
SETTLE_CYCLES = 20  # the bound counts growth after the first 20 cycles
FRAMES_PER_CYCLE = 5


@dataclass
class Sample:
    t: float
    phase: str
    cycle: int
    rss_mb: float
    threads: int
    fds: int


def process_sample(pid: int, started: float, phase: str, cycle: int) -> Sample:
    return Sample(
        t=round(time.monotonic() - started, 2), phase=phase, cycle=cycle,
        rss_mb=round(rss_bytes(pid) / 2**20, 1),
        threads=len(os.listdir(f"/proc/{pid}/task")), fds=len(os.listdir(f"/proc/{pid}/fd")),
    )  # fmt: skip


async def wait_frames(api: StreamAPI, stream_id: str, at_least: int, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = await api.status(stream_id)
        if body["counters"]["frames_out"] >= at_least or body["state"] in ("completed", "error"):
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"{stream_id}: no {at_least} frames out: {body}")
        await asyncio.sleep(0.05)


async def soak(minutes: float, cycles: int, interval: float, out: Path) -> dict:
    base = Path(tempfile.mkdtemp(prefix="soak-"))
    server = await asyncio.to_thread(start_comfyui, base / "base", base / "comfyui.log")
    pid, started = server.process.pid, time.monotonic()
    samples: list[Sample] = []
    where = {"phase": "idle", "cycle": 0}

    async def sampler() -> None:
        while True:
            samples.append(process_sample(pid, started, where["phase"], where["cycle"]))
            await asyncio.sleep(interval)

    api = StreamAPI(server.base_url)
    sampling = asyncio.create_task(sampler())
    try:
        async with serve_relay(autocreate=True) as relay:
            sources = []
            for name in ("soak-a", "soak-b", "soak-cycle"):
                relay.relay.create_channel(f"{name}-in", "video/MP2T")
                frames = int(30 * (minutes * 60 + cycles * 3 + 60))
                sources.append(asyncio.create_task(publish_synthetic(
                    relay.channel_url(f"{name}-in"), frames, width=SIZE, height=SIZE)))  # fmt: skip
            await asyncio.sleep(2 * interval)
            where["phase"] = "two streams"
            for name in ("soak-a", "soak-b"):
                urls = relay.channel_url(f"{name}-in"), relay.channel_url(f"{name}-out")
                status, body = await api.start(name, *urls, INVERT, SIZE, SIZE)
                if status != 200:
                    raise RuntimeError(f"start {name}: {status} {body}")
            await asyncio.sleep(minutes * 60)
            finals = [await api.stop(name) for name in ("soak-a", "soak-b")]
            where["phase"] = "start/stop cycles"
            cycle_rss: list[float] = []
            for cycle in range(1, cycles + 1):
                where["cycle"] = cycle
                status, body = await api.start("soak-cycle", relay.channel_url("soak-cycle-in"),
                                               relay.channel_url("soak-cycle-out"), INVERT, SIZE, SIZE)
                if status != 200:
                    raise RuntimeError(f"cycle {cycle}: {status} {body}")
                await wait_frames(api, "soak-cycle", FRAMES_PER_CYCLE)
                await api.stop("soak-cycle")
                cycle_rss.append(rss_bytes(pid) / 2**20)
            where["phase"] = "idle after"
            await asyncio.sleep(2 * interval)
            for source in sources:
                source.cancel()
            await asyncio.gather(*sources, return_exceptions=True)
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
        await api.close()
        server.stop()
    await asyncio.to_thread(write_outputs, samples, out)
    return summarize(samples, cycle_rss, finals, minutes, cycles)


def summarize(
    samples: list[Sample], cycle_rss: list[float], finals: list, minutes: float, cycles: int
) -> dict:
    def phase(name: str) -> list[Sample]:
        return [s for s in samples if s.phase == name]

    two, cyc = phase("two streams"), phase("start/stop cycles")
    settled = cycle_rss[SETTLE_CYCLES - 1] if len(cycle_rss) >= SETTLE_CYCLES else cycle_rss[0]
    return {
        "minutes": minutes, "cycles": cycles,
        "two_streams": {"rss_mb_first": two[0].rss_mb, "rss_mb_last": two[-1].rss_mb,
                        "rss_mb_max": max(s.rss_mb for s in two), "threads_first": two[0].threads,
                        "threads_last": two[-1].threads, "fds_first": two[0].fds, "fds_last": two[-1].fds,
                        "final_states": [f[1]["state"] for f in finals],
                        "frames_out": [f[1]["counters"]["frames_out"] for f in finals]},
        "cycles_phase": {"rss_mb_after_cycle_1": round(cycle_rss[0], 1),
                         f"rss_mb_after_cycle_{SETTLE_CYCLES}": round(settled, 1),
                         "rss_mb_after_last": round(cycle_rss[-1], 1),
                         "rss_growth_mb_after_settle": round(cycle_rss[-1] - settled, 1),
                         "threads_first": cyc[0].threads if cyc else None,
                         "threads_last": samples[-1].threads, "fds_first": cyc[0].fds if cyc else None,
                         "fds_last": samples[-1].fds},
    }  # fmt: skip


def write_outputs(samples: list[Sample], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_csv(samples, out / "soak.csv")
    plot(samples, out / "soak.png")


def write_csv(samples: list[Sample], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(samples[0])))
        writer.writeheader()
        writer.writerows(asdict(s) for s in samples)


def plot(samples: list[Sample], path: Path) -> None:
    """Three stacked line panels over time (RSS MiB, threads, fds); phase changes as vertical lines."""
    width, panel_h, left, right, top = 900, 220, 70, 20, 30
    image = Image.new("RGB", (width, panel_h * 3 + 20), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    t_max = max(s.t for s in samples) or 1.0
    panels = (("rss_mb", "RSS (MiB)"), ("threads", "threads"), ("fds", "open fds"))
    for index, (key, label) in enumerate(panels):
        y0 = index * panel_h + top
        height = panel_h - top - 20
        values = [float(getattr(s, key)) for s in samples]
        low, high = min(values) * 0.95, max(values) * 1.05 or 1.0
        draw.text((left, y0 - 20), f"{label}: {min(values):g} .. {max(values):g}", fill="black", font=font)
        draw.rectangle((left, y0, width - right, y0 + height), outline=(160, 160, 160))

        def xy(sample: Sample, value: float, y0: int = y0, height: int = height, low: float = low,
               high: float = high) -> tuple[float, float]:
            x = left + (width - left - right) * sample.t / t_max
            return x, y0 + height - height * (value - low) / max(high - low, 1e-9)

        for before, after in zip(samples, samples[1:], strict=False):
            if before.phase != after.phase:
                x = xy(after, low)[0]
                draw.line((x, y0, x, y0 + height), fill=(200, 120, 120))
                draw.text((x + 3, y0 + 2), after.phase, fill=(160, 60, 60), font=font)
        draw.line([xy(s, v) for s, v in zip(samples, values, strict=True)], fill=(33, 102, 172), width=2)
    draw.text((left, panel_h * 3), f"time (s), 0 .. {t_max:.0f}", fill="black", font=font)
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the two streams run")
    parser.add_argument("--cycles", type=int, default=200, help="start/stop cycles after them")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "comfy-trickle-soak")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    summary = asyncio.run(soak(args.minutes, args.cycles, args.interval, args.out))
    (args.out / "soak.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"CSV and plot: {args.out}/soak.csv, {args.out}/soak.png")


if __name__ == "__main__":
    main()
