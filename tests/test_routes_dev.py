"""The dev relay mounted on ComfyUI's own port and the local test source, against the real ComfyUI."""

from __future__ import annotations

import asyncio
import io
import uuid

import av
import pytest
from aiohttp.test_utils import TestClient, TestServer
from comfy_trickle.dev.routes import DevRoutes
from comfy_trickle.media.synthetic import make_test_frame, read_frame_index
from comfy_trickle.routes.settings import TrickleSettings
from comfy_trickle.trickle.publisher import TricklePublisher
from comfy_trickle.trickle.subscriber import TrickleSubscriber

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("prefix", ["/trickle/relay/", "/api/trickle/relay/"])
async def test_relay_on_comfyui_port_round_trip(comfyui, prefix):
    url = f"{comfyui.base_url}{prefix}rt-{uuid.uuid4().hex[:6]}"
    payloads = [b"first segment " * 1000, b"second", b"third " * 50000]

    async def read_three() -> list[bytes]:
        got = []
        async with TrickleSubscriber(url, start_seq=0) as subscriber:
            async for segment in subscriber:
                got.append(await segment.read_all())
                if len(got) == len(payloads):
                    break
        return got

    async with TricklePublisher(url, mime_type="application/octet-stream") as publisher:
        first_seq = await publisher.write_segment(payloads[0])  # creates the channel
        # the subscriber joins at seq 0 after it was written, then waits for the later ones
        reader = asyncio.create_task(read_three())
        for data in payloads[1:]:
            await publisher.write_segment(data)
        received = await asyncio.wait_for(reader, 20)
    assert first_seq == 0
    assert received == payloads
    # leaving the publisher deleted the channel
    assert comfyui.request("GET", url.replace(comfyui.base_url, "") + "/0").status == 404


def decode_ts(data: bytes) -> list:
    frames = []
    with av.open(io.BytesIO(data), format="mpegts") as container:
        assert container.streams.audio, "the test source carries a tone"
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
    return frames


async def test_test_source_publishes_decodable_real_time_frames(comfyui):
    status, source = comfyui.post_json(
        "/trickle/test-source", {"width": 128, "height": 96, "fps": 20, "duration_s": 2.5, "audio": True}
    )
    assert status == 200, source
    assert source["subscribe_url"].startswith(f"http://127.0.0.1:{comfyui.port}/trickle/relay/test-")
    assert source["publish_url"] == source["subscribe_url"] + "-out"
    assert source["running"] is True

    loop = asyncio.get_running_loop()
    started = loop.time()
    data = bytearray()
    async with TrickleSubscriber(source["subscribe_url"], start_seq=0) as subscriber:
        async for segment in subscriber:
            data += await segment.read_all()
    took = loop.time() - started

    frames = decode_ts(bytes(data))
    assert len(frames) == 50  # 2.5 s at 20 fps
    indices = [read_frame_index(rgb) for rgb in frames]
    assert indices == list(range(50))
    for index in (0, 25, 49):
        diff = abs(frames[index].astype(int) - make_test_frame(index, 128, 96).astype(int)).mean()
        assert diff < 6, (index, diff)
    assert took > 2.0, "published in real time, not as fast as possible"

    status, listing = comfyui.get("/trickle/test-source")
    assert status == 200 and source["name"] not in listing["sources"]  # ended by its duration


def test_test_source_stop_and_errors(comfyui):
    name = f"stopme-{uuid.uuid4().hex[:6]}"
    status, source = comfyui.post_json("/trickle/test-source", {"name": name, "width": 64, "height": 64})
    assert status == 200 and source["name"] == name and source["duration_s"] is None
    try:
        status, again = comfyui.post_json("/trickle/test-source", {"name": name})
        assert status == 409 and name in again["error"]
        status, listing = comfyui.get("/api/trickle/test-source")
        assert name in listing["sources"]
    finally:
        result = comfyui.request("DELETE", f"/trickle/test-source/{name}")
    assert result.status == 200
    assert result.json()["stopped"] is True and result.json()["running"] is False
    assert comfyui.request("DELETE", f"/trickle/test-source/{name}").status == 404
    # the channel is gone with the source: subscribers see the end instead of waiting forever
    assert comfyui.request("GET", f"/trickle/relay/{name}/0").status == 404

    for body, field in (({"width": 10}, "width"), ({"fps": 0}, "fps"), ({"name": "a/b"}, "name"),
                        ({"audio": "yes"}, "audio"), ({"duration_s": -1}, "duration_s")):  # fmt: skip
        status, answer = comfyui.post_json("/trickle/test-source", body)
        assert status == 400, body
        assert answer["field"] == field


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"width": Infinity}', "width"),
        (b'{"height": NaN}', "height"),
        (b'{"width": 1e400}', "width"),
        (b'{"fps": NaN}', "fps"),
        (b'{"duration_s": -Infinity}', "duration_s"),
    ],
)
async def test_test_source_non_finite_numbers_are_400_not_500(raw, field):
    """Regression: ``int(inf)`` / ``int(nan)`` in the option parser answered 500."""
    dev = DevRoutes(TrickleSettings())
    client = TestClient(TestServer(dev.get_app()))
    await client.start_server()
    try:
        json_header = {"Content-Type": "application/json"}
        resp = await client.post("/trickle/test-source", data=raw, headers=json_header)
        assert resp.status == 400
        answer = await resp.json()
        assert answer["field"] == field and field in answer["error"]
        assert dev.sources == {}
    finally:
        await client.close()
