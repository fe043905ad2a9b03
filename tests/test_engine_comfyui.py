"""The stream engine end to end: the real ComfyUI (shared session fixture) runs stream workflows fed by
the synthetic source over our dev relay (served in this test process on 127.0.0.1); outputs are
subscribed, decoded and checked pixel by pixel, frame by frame."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from comfy_trickle.media.synthetic import make_test_frame, psnr, read_frame_index
from comfy_trickle.trickle.relay_server import serve_relay
from engine_support import (
    INVERT,
    SEED_PASSTHROUGH,
    TWO_NODE_CHAIN,
    StreamAPI,
    collect_output,
    publish_synthetic,
)

SIZE = 128
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
async def relay():
    async with serve_relay(autocreate=True) as running:
        yield running


@pytest.fixture
async def api(comfyui):
    client = StreamAPI(comfyui.base_url)
    yield client
    _, streams = await client.call("GET", "/streams")
    for stream_id, status in (streams or {}).get("streams", {}).items():
        if status["state"] in ("starting", "running"):
            await client.stop(stream_id)
    await client.close()


def channels(relay, name: str) -> tuple[str, str]:
    relay.relay.create_channel(f"{name}-in", "video/MP2T")
    relay.relay.create_channel(f"{name}-out", "video/MP2T")
    return relay.channel_url(f"{name}-in"), relay.channel_url(f"{name}-out")


async def run_stream(api, relay, name, workflow, frame_count, **publish):
    """Start a stream, publish frames in real time, return (decoded output, final status)."""
    sub_url, pub_url = channels(relay, name)
    status, body = await api.start(name, sub_url, pub_url, workflow, SIZE, SIZE)
    assert status == 200, body
    assert body["state"] == "running"
    collector = asyncio.create_task(collect_output(pub_url))
    source = await publish_synthetic(sub_url, frame_count, width=SIZE, height=SIZE, **publish)
    output = await asyncio.wait_for(collector, 60)
    final = await api.wait_state(name, {"completed", "error"})
    return source, output, final


def assert_every_frame(source, output, frame_count, transform=lambda rgb: rgb, min_psnr=28.0):
    indices = [read_frame_index(transform(f.rgb)) for f in output.frames]
    assert indices == list(range(frame_count)), indices
    first_pts = output.frames[0].pts - source.pts(0)
    for frame in output.frames:  # input pts kept (the TS muxer may add one constant offset)
        index = read_frame_index(transform(frame.rgb))
        assert frame.pts - source.pts(index) == first_pts
        assert psnr(transform(frame.rgb), make_test_frame(index, SIZE, SIZE)) > min_psnr


async def test_seed_passthrough_workflow_streams_every_frame_in_order(api, relay):
    source, output, final = await run_stream(api, relay, "seed", SEED_PASSTHROUGH, 45)
    assert final["state"] == "completed", final
    assert_every_frame(source, output, 45)
    counters = final["counters"]
    assert counters["frames_in"] == counters["frames_processed"] == counters["frames_out"] == 45
    assert counters["frames_dropped"] == 0
    assert counters["latency_ms"]["p50"] > 0


async def test_inverting_workflow_inverts_pixels(api, relay):
    source, output, final = await run_stream(api, relay, "invert", INVERT, 30)
    assert final["state"] == "completed", final
    assert_every_frame(source, output, 30, transform=lambda rgb: 255 - rgb)


async def test_two_node_chain(api, relay):
    source, output, final = await run_stream(api, relay, "chain", TWO_NODE_CHAIN, 30)
    assert final["state"] == "completed", final
    assert_every_frame(source, output, 30, transform=lambda rgb: np.ascontiguousarray((255 - rgb)[::-1]))
