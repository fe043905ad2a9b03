"""Issue 13 §9, fairness: a stream with a 5,000-node workflow must not starve a simple stream.

Two causes were fixed: a frame's prompt no longer carries other streams' per-frame nodes (so the simple
stream's prompts stay small), and a stream over its fair share of executor time waits while another
has work (``streams.fairness``). Real ComfyUI and relay; the figures asserted are counts of frames over
wall time with generous bounds (the exact figures go to bench/ and the report).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from comfy_trickle.devtools.stream_harness import INVERT, StreamAPI, collect_output, publish_synthetic
from comfy_trickle.devtools.tiny_models import big_workflow

SIZE = 64
SIMPLE_FRAMES = 90
HEAVY_NODES = 5000
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420), pytest.mark.relay(autocreate=True)]


def heavy_workflow(nodes: int = HEAVY_NODES) -> dict:
    return big_workflow(nodes, size=SIZE)


@pytest.fixture
async def big_api(comfyui_factory):
    server = comfyui_factory(env={"COMFY_TRICKLE_MAX_WORKFLOW_NODES": "6000"})
    client = StreamAPI(server.base_url)
    yield client
    await client.stop_active()
    await client.close()


async def start(api, relay, stream_id, workflow):
    relay.relay.create_channel(f"{stream_id}-in", "video/MP2T")
    relay.relay.create_channel(f"{stream_id}-out", "video/MP2T")
    sub_url, pub_url = relay.channel_url(f"{stream_id}-in"), relay.channel_url(f"{stream_id}-out")
    status, body = await api.start(stream_id, sub_url, pub_url, workflow, SIZE, SIZE, max_backlog_s=120.0)
    assert status == 200, body
    return sub_url, pub_url


async def simple_fps(api, relay, stream_id: str) -> float:
    """Run the simple (invert) stream over SIMPLE_FRAMES real-time frames; frames out per wall second."""
    sub_url, pub_url = await start(api, relay, stream_id, INVERT)
    began = time.monotonic()
    collector = asyncio.create_task(collect_output(pub_url, timeout=240))
    await publish_synthetic(sub_url, SIMPLE_FRAMES, width=SIZE, height=SIZE)
    output = await asyncio.wait_for(collector, 240)
    took = time.monotonic() - began
    final = await api.wait_state(stream_id, {"completed", "error"}, timeout=60)
    assert final["state"] == "completed", final
    return len(output.frames) / took


async def test_a_simple_stream_keeps_its_rate_beside_a_5000_node_workflow(big_api, relay):
    tag = time.monotonic_ns() % 10**9
    alone = await simple_fps(big_api, relay, f"alone-{tag}")

    heavy_id = f"heavy-{tag}"
    workflow = heavy_workflow()
    assert len(workflow) == HEAVY_NODES
    heavy_in, _ = await start(big_api, relay, heavy_id, workflow)
    heavy_source = asyncio.create_task(publish_synthetic(heavy_in, 3000, width=SIZE, height=SIZE, end=False))
    try:
        for _ in range(1200):  # the heavy stream is running its frames before the simple one starts
            if (await big_api.status(heavy_id))["counters"]["frames_processed"] >= 2:
                break
            await asyncio.sleep(0.1)
        beside = await simple_fps(big_api, relay, f"beside-{tag}")
        heavy = await big_api.status(heavy_id)
    finally:
        heavy_source.cancel()
        await asyncio.gather(heavy_source, return_exceptions=True)
        await big_api.stop(heavy_id)
    assert heavy["state"] == "running" and heavy["counters"]["frames_processed"] >= 3, heavy
    assert 0.0 <= heavy["executor_share"] <= 1.0
    # generous: the simple stream keeps at least half its own rate (before the fix: a few percent)
    assert beside >= 0.5 * alone, (beside, alone, heavy["counters"])


async def test_a_workflow_over_the_node_limit_answers_400_naming_the_limit(comfyui, relay):
    api = StreamAPI(comfyui.base_url)
    try:
        status, body = await api.start(
            "too-big",
            relay.channel_url("tb-in"),
            relay.channel_url("tb-out"),
            heavy_workflow(1001),
            SIZE,
            SIZE,
        )
    finally:
        await api.close()
    assert status == 400, body
    assert body["limit"] == "max_workflow_nodes" and body["max_workflow_nodes"] == 1000, body
    assert "1001 nodes, over the limit of 1000 (max_workflow_nodes" in body["error"], body
