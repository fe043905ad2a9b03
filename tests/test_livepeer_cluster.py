"""Three ComfyUI workers behind one orchestrator peer: each registers its own capability (go-livepeer keys
capabilities by name: ``core/external_capabilities.go``), streams run on each, one worker is killed; the
others keep serving and their capacity reports stay right. Tiny streams (128x128, 10 fps): three
ComfyUIs share this machine's two cores."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from comfy_trickle.devtools.processes import free_port
from comfy_trickle.devtools.stream_harness import INVERT, publish_synthetic
from livepeer_peers.gateway import GatewayPeer
from livepeer_peers.threaded import ThreadedOrchestrator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420), pytest.mark.relay(autocreate=False)]

SECRET = "cluster-secret-42"
MAX_STREAMS = 2


@pytest.fixture(scope="module")
def orchestrator():
    peer = ThreadedOrchestrator(SECRET, free_port())
    peer.start()
    yield peer
    peer.close()


@pytest.fixture(scope="module")
def workers(comfyui_factory, orchestrator):
    return [
        comfyui_factory(env={
            "COMFY_TRICKLE_MAX_STREAMS": str(MAX_STREAMS),
            "ORCH_URL": orchestrator.peer.url,
            "ORCH_SECRET": SECRET,
            "CAPABILITY_NAME": f"comfyui-w{index}",
            "ORCH_REREGISTER_S": "2",
            "COMFY_TRICKLE_STATUS_INTERVAL_S": "2",
        })
        for index in range(3)
    ]


async def capacities(orchestrator, names, timeout: float = 60.0, **wanted: int) -> dict[str, int]:
    """Wait until the orchestrator's capabilities report ``wanted`` (name -> capacity)."""
    deadline = time.monotonic() + timeout
    while True:
        known = dict(orchestrator.peer.capabilities)
        seen = {name: cap["capacity"] for name, cap in known.items() if name in names}
        if all(seen.get(n) == c for n, c in wanted.items()) or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.2)


async def registered_since(orchestrator, marker: int, names: set[str], timeout: float = 30.0) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        late = {r.body["name"] for r in orchestrator.peer.registrations[marker:]}
        if names <= late or time.monotonic() > deadline:
            return late
        await asyncio.sleep(0.2)


async def frames_out(http, worker, stream_id: str) -> int:
    async with http.get(f"{worker.base_url}/stream/{stream_id}/status") as response:
        return (await response.json())["counters"]["frames_out"]


async def test_three_workers_one_killed_the_others_serve_and_report_capacity(relay, workers, orchestrator):
    names = [f"comfyui-w{i}" for i in range(3)]
    initial = await capacities(orchestrator, names, **dict.fromkeys(names, MAX_STREAMS))
    assert initial == dict.fromkeys(names, MAX_STREAMS)
    assert {orchestrator.peer.capabilities[n]["url"] for n in names} == {w.base_url for w in workers}

    gateway = GatewayPeer(relay, workers[0].base_url, keepalive_s=2.0)
    publishers = []
    try:
        for index, worker in enumerate(workers):
            params = {"width": 128, "height": 128, "prompt": INVERT, "max_backlog_s": 60.0}
            status, body, stream = await gateway.start(f"cl-{index}", params, byoc=True,
                                                       worker_url=worker.base_url)
            assert status == 200, body
            publishers.append(asyncio.create_task(
                publish_synthetic(stream.urls["subscribe_url"], 300, fps=10, end=False)))
        one_used = await capacities(orchestrator, names, **dict.fromkeys(names, MAX_STREAMS - 1))
        assert one_used == dict.fromkeys(names, MAX_STREAMS - 1)

        workers[2].stop()  # killed
        async with aiohttp.ClientSession() as http:
            before = [await frames_out(http, w, f"cl-{i}") for i, w in enumerate(workers[:2])]
            for stream in gateway.streams[:2]:
                await stream.wait_for(lambda e: e.type == "status" and e.event["timestamp"] > 0, 10)
            await asyncio.sleep(3)
            after = [await frames_out(http, w, f"cl-{i}") for i, w in enumerate(workers[:2])]
            assert all(b > a for a, b in zip(before, after, strict=True)), (before, after)
            # the survivors' capacity reports go on (re-registration every 2 s) and stay right
            marker = len(orchestrator.peer.registrations)
            async with http.post(f"{workers[0].base_url}/stream/stop", headers={"X-Stream-Id": "cl-0"}) as r:
                assert r.status == 200
            after_stop = await capacities(orchestrator, names, **{"comfyui-w0": MAX_STREAMS,
                                                                   "comfyui-w1": MAX_STREAMS - 1})
            assert after_stop["comfyui-w0"] == MAX_STREAMS and after_stop["comfyui-w1"] == MAX_STREAMS - 1
            late = await registered_since(orchestrator, marker, {"comfyui-w0", "comfyui-w1"})
            assert {"comfyui-w0", "comfyui-w1"} <= late and "comfyui-w2" not in late
        assert all(s.silence_failure is None for s in gateway.streams[:2])
    finally:
        for task in publishers:
            task.cancel()
        await gateway.close()
