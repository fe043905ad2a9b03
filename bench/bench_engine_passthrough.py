"""fps and latency of one passthrough stream through a real ComfyUI (the seed's LoadTensor -> SaveTensor).

    source scripts/env.sh && $COMFY_TRICKLE_PY bench/bench_engine_passthrough.py [--size 512] [--invert]

Starts ComfyUI (``--cpu``) with the pack, serves a dev relay in this process on 127.0.0.1, publishes the
synthetic source in real time at 30 fps, subscribes to the output and prints the stream's counters.
A second run publishes as fast as possible (large backlog, nothing dropped) to show the ceiling.
Latency is the engine's own figure: input frame decoded -> output frame encoded (p50/p95).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from comfy_trickle.devtools.comfyui_server import start_comfyui
from comfy_trickle.devtools.stream_harness import (
    INVERT,
    SEED_PASSTHROUGH,
    StreamAPI,
    collect_output,
    publish_synthetic,
)
from comfy_trickle.trickle.relay_server import serve_relay


async def one_run(api, relay, name, size, frames, realtime, backlog, workflow=SEED_PASSTHROUGH):
    relay.relay.create_channel(f"{name}-in", "video/MP2T")
    relay.relay.create_channel(f"{name}-out", "video/MP2T")
    sub_url, pub_url = relay.channel_url(f"{name}-in"), relay.channel_url(f"{name}-out")
    status, body = await api.start(
        name, sub_url, pub_url, workflow, size, size, max_backlog_s=backlog
    )
    assert status == 200, body
    collector = asyncio.create_task(collect_output(pub_url, timeout=600))
    samples = []

    async def sample():
        while True:
            await asyncio.sleep(1.0)
            samples.append((await api.status(name))["counters"])

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    await publish_synthetic(sub_url, frames, width=size, height=size, realtime=realtime)
    output = await collector
    elapsed = time.monotonic() - started
    sampler.cancel()
    final = await api.wait_state(name, {"completed", "error"}, timeout=60)
    counters = final["counters"]
    steady = list(samples[2:-1]) or samples
    fps_out = sum(s["fps_out"] for s in steady) / max(1, len(steady))
    pace = "real time 30 fps" if realtime else "as fast as possible"
    print(f"--- {name}: {size}x{size}, {frames} frames, {pace}")
    print(f"state={final['state']} frames_in={counters['frames_in']} "
          f"processed={counters['frames_processed']} out={counters['frames_out']} "
          f"dropped={counters['frames_dropped']} decoded_output={len(output.frames)}")
    print(f"fps_out (steady, mean of 1 s samples) = {fps_out:.1f}; overall out/elapsed = "
          f"{counters['frames_out'] / elapsed:.1f} fps over {elapsed:.1f} s")
    print(f"latency p50 = {counters['latency_ms']['p50']} ms, p95 = {counters['latency_ms']['p95']} ms "
          f"(last 300 frames)")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--invert", action="store_true", help="also run an inverting workflow")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    server = await asyncio.to_thread(start_comfyui, base / "base", base / "comfyui.log")
    try:
        api = StreamAPI(server.base_url)
        async with serve_relay(autocreate=True) as relay:
            frames = int(args.seconds * 30)
            await one_run(api, relay, "realtime", args.size, frames, True, 1.0)
            await one_run(api, relay, "ceiling", args.size, frames, False, 120.0)
            if args.invert:
                await one_run(api, relay, "invert-realtime", args.size, frames, True, 1.0, INVERT)
        await api.close()
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
