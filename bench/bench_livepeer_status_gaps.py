"""Status-event rhythm of the Livepeer events channel while ComfyUI's executor is busy 5 s per frame.

    source scripts/env.sh && $COMFY_TRICKLE_PY bench/bench_livepeer_status_gaps.py [--seconds 75]

Starts ComfyUI (``--cpu``) with the pack and the test node pack (``TrickleTestSlow``: ``time.sleep`` on
the executor thread), serves a dev relay here, starts one stream the way a gateway does (``-events``
channel, ai-runner body) with a workflow whose node holds the executor 5 s per frame, publishes 10 fps
and reads the events channel. Prints the intervals between status events as a histogram (default status
interval: 9.5 s, ai-runner's 10 s less a delivery margin; the gateway gives up after 30 s of silence).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import aiohttp
from comfy_trickle.devtools.comfyui_server import start_comfyui
from comfy_trickle.devtools.stream_harness import publish_synthetic
from comfy_trickle.trickle.protocol import SEQ_NEXT
from comfy_trickle.trickle.relay_server import serve_relay
from comfy_trickle.trickle.subscriber import TrickleSubscriber

TEST_NODES = Path(__file__).resolve().parent.parent / "tests" / "custom_nodes" / "trickle_test_nodes"
SLOW_5S = {
    "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
    "2": {"class_type": "TrickleTestSlow", "inputs": {"image": ["1", 0], "seconds": 5.0}},
    "3": {"class_type": "TrickleOutput", "inputs": {"images": ["2", 0], "stream_id": ""}},
}


async def read_status_times(url: str, until: float, times: list[float], states: list[str]) -> None:
    subscriber = TrickleSubscriber(url, start_seq=SEQ_NEXT)
    try:
        while time.monotonic() < until:
            segment = await asyncio.wait_for(subscriber.next_segment(), max(0.1, until - time.monotonic()))
            if segment is None:
                return
            envelope = json.loads(await segment.read_all())
            if envelope["event"]["type"] == "status":
                times.append(time.monotonic())
                states.append(envelope["event"]["state"])
    except asyncio.TimeoutError:
        return
    finally:
        await subscriber.close()


async def run(base_url: str, seconds: float) -> None:
    async with serve_relay() as relay:
        names = {"subscribe_url": ("gap", "video/MP2T"), "publish_url": ("gap-out", "video/MP2T"),
                 "events_url": ("gap-events", "application/json"),
                 "control_url": ("gap-control", "application/json")}
        for name, mime in names.values():
            relay.relay.create_channel(name, mime)
        urls = {key: relay.channel_url(name) for key, (name, _) in names.items()}
        times: list[float] = []
        states: list[str] = []
        until = time.monotonic() + seconds
        reader = asyncio.create_task(read_status_times(urls["events_url"], until, times, states))
        params = {"width": 128, "height": 128, "prompt": SLOW_5S}
        body = {**urls, "gateway_request_id": "gap", "params": params}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base_url}/stream/start", json=body) as response:
                assert response.status == 200, await response.text()
        frames = int(seconds * 10)
        source = asyncio.create_task(publish_synthetic(urls["subscribe_url"], frames, fps=10, end=False))
        await reader
        source.cancel()
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    histogram: dict[str, int] = {}
    for gap in gaps:
        key = f"{gap:.1f}s"
        histogram[key] = histogram.get(key, 0) + 1
    print(f"status events: {len(times)} in {seconds:.0f} s, executor busy 5 s per frame")
    print("interval histogram:", json.dumps(dict(sorted(histogram.items()))))
    print(f"max gap {max(gaps):.2f} s, min gap {min(gaps):.2f} s; states {sorted(set(states))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=75.0)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-lp-gaps-"))
    server = start_comfyui(base / "base", base / "comfyui.log", node_packs=[TEST_NODES])
    try:
        asyncio.run(run(server.base_url, args.seconds))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
