"""routes/media_io.py: push (one long MPEG-TS POST -> trickle channel) and watch (channel -> one continuous
MPEG-TS response), with real ffmpeg on both ends, the real relay and a real ComfyUI running invert."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from comfy_trickle.devtools.stream_harness import INVERT, StreamAPI, collect_output
from comfy_trickle.routes.media_io import MediaIORoutes
from comfy_trickle.routes.settings import TrickleSettings
from comfy_trickle.streams.errors import StreamNotFound
from comfy_trickle.streams.limits import StreamLimits

pytestmark = pytest.mark.timeout(180)
TOKEN = "s3cret"  # noqa: S105 - a test token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WIDTH, HEIGHT, FPS = 160, 120, 25
# what ffmpeg's stderr says when the joins of a watched stream are broken
BROKEN_STREAM = re.compile(r"corrupt|discontinuity|non[- ]monoton|error", re.IGNORECASE)


class NoStreams:
    def status(self, stream_id):
        raise StreamNotFound(f"No stream with id {stream_id!r}.")


async def routes_client(settings: TrickleSettings) -> TestClient:
    client = TestClient(TestServer(MediaIORoutes(NoStreams(), settings).get_app()))
    await client.start_server()
    return client


def x264_ts(tmp_path: Path, seconds: float, gop: int = 25) -> bytes:
    path = tmp_path / "in.ts"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}",
         "-t", str(seconds), "-c:v", "libx264", "-bf", "3", "-g", str(gop), "-f", "mpegts", str(path)],
        check=True, timeout=60,
    )
    return path.read_bytes()


async def test_push_and_watch_refuse_bad_requests_in_json(relay, tmp_path):
    client = await routes_client(TrickleSettings(token=TOKEN))
    try:
        for method, path in (("POST", "/stream/push"), ("GET", "/stream/watch"), ("GET", "/stream/x/watch")):
            resp = await client.request(method, path)
            assert resp.status == 401, path
            assert (await resp.json())["error"] == "Missing bearer token"
        cases = [
            ("POST", "/stream/push", 400, "Give exactly one"),
            ("POST", "/stream/push?url=http://a/b&channel=c", 400, "Give exactly one"),
            ("POST", "/stream/push?url=ftp://127.0.0.1/x", 400, "http(s)"),
            ("POST", "/stream/push?url=http://example.com/ch", 403, "not allowed"),
            ("GET", "/stream/watch?url=http://example.com:9/ch", 403, "not allowed"),
            ("GET", "/stream/watch?channel=../x", 400, "channel must be"),
            ("GET", "/stream/nope/watch", 404, "No stream with id"),
            ("GET", f"/stream/watch?url={relay.channel_url('absent')}", 404, "No trickle channel"),
        ]
        for method, path, status, words in cases:
            resp = await client.request(method, path, headers=AUTH)
            assert resp.status == status, (path, await resp.text())
            assert words in (await resp.json())["error"], path
        # a body that is not MPEG-TS video: 400, nothing published
        resp = await client.post(f"/stream/push?url={relay.channel_url('junk')}", data=b"not ts" * 5000,
                                 headers=AUTH)
        assert resp.status == 400
        assert "no MPEG-TS video keyframe" in (await resp.json())["error"]
        assert "junk" not in relay.relay.channels
    finally:
        await client.close()


async def test_a_keyframe_interval_over_the_segment_bound_is_refused_with_413(relay, tmp_path):
    limits = StreamLimits(max_push_segment_bytes=20_000)
    client = await routes_client(TrickleSettings(limits=limits))
    try:
        body = x264_ts(tmp_path, 4, gop=100)  # one GOP of 4 s is far over 20 kB
        resp = await client.post(f"/stream/push?url={relay.channel_url('big')}", data=body)
        assert resp.status == 413
        answer = await resp.json()
        assert answer["max_segment_bytes"] == 20_000
        assert "keyframes more often" in answer["error"]
    finally:
        await client.close()


def reference_frames(frame_count: int) -> np.ndarray:
    """testsrc2's frames as rendered by ffmpeg, uncompressed (the truth the output is compared to)."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}",
         "-frames:v", str(frame_count), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True, timeout=60,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(frame_count, HEIGHT, WIDTH, 3).astype(np.int16)


async def wait_for_channel(http: aiohttp.ClientSession, url: str) -> None:
    for _ in range(200):
        async with http.post(url) as resp:  # the relay answers 200 once the channel exists
            if resp.status == 200:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"channel {url} never appeared")


async def test_ffmpeg_pushes_into_a_stream_running_invert_and_the_output_follows(comfyui):
    base = comfyui.base_url
    channel = f"push-{uuid.uuid4().hex[:6]}"
    relay_url = f"{base}/trickle/relay/{channel}"
    api = StreamAPI(base)
    seconds = 6
    try:
        # both channels exist before anything runs, so the stream can start before the first byte arrives
        await wait_for_channel(api.http, relay_url)
        await wait_for_channel(api.http, relay_url + "-out")
        status, body = await api.start(
            channel, relay_url, relay_url + "-out", INVERT, width=WIDTH, height=HEIGHT
        )
        assert status == 200, body
        collecting = asyncio.create_task(collect_output(relay_url + "-out", timeout=90))
        push = await asyncio.create_subprocess_exec(
            "ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}",
            "-t", str(seconds), "-c:v", "libx264", "-bf", "3", "-g", str(FPS), "-f", "mpegts",
            f"{base}/stream/push?channel={channel}",
            stderr=asyncio.subprocess.PIPE,
        )
        _, push_err = await asyncio.wait_for(push.communicate(), 60)
        assert push.returncode == 0, push_err.decode()
        output = await collecting  # the push ended the channel, so the stream completed and its output ended
        final = await api.wait_state(channel, {"completed"})
    finally:
        await api.close()
    assert final["counters"]["frames_out"] == len(output.frames)
    assert len(output.frames) >= 0.8 * FPS * seconds
    reference = reference_frames(FPS * seconds + FPS)
    inverted = 255 - reference
    matched = []
    for frame in output.frames:
        rgb = frame.rgb.astype(np.int16)
        errors = np.abs(inverted - rgb).mean(axis=(1, 2, 3))
        best = int(errors.argmin())
        assert errors[best] < 12, f"output frame {frame.pts} matches no inverted input frame"
        assert np.abs(reference[best] - rgb).mean() > 60, "the output is not inverted"
        matched.append(best)
    pts = [f.pts for f in output.frames]
    assert pts == sorted(pts)
    # the output walks through the input in order, from its start to its end
    assert matched[0] <= FPS and matched[-1] >= FPS * (seconds - 1)
    assert sum(b < a - 2 for a, b in zip(matched, matched[1:], strict=False)) == 0


async def test_ffmpeg_reads_10_s_of_a_running_stream_via_the_watch_route_without_a_break(comfyui, tmp_path):
    base = comfyui.base_url
    fps = 15
    status, source = comfyui.post_json(
        "/trickle/test-source", {"width": 128, "height": 96, "fps": fps, "duration_s": 30, "audio": False}
    )
    assert status == 200, source
    stream_id = f"watch-{uuid.uuid4().hex[:6]}"
    api = StreamAPI(base)
    try:
        status, body = await api.start(stream_id, source["subscribe_url"], source["publish_url"], INVERT,
                                       width=128, height=96)
        assert status == 200, body
        for _ in range(300):  # until the output channel has a segment to start from
            if (await api.status(stream_id))["counters"]["frames_out"] > 0:
                break
            await asyncio.sleep(0.1)
        watch = await asyncio.create_subprocess_exec(
            "ffmpeg", "-v", "warning", "-t", "10", "-i", f"{base}/stream/{stream_id}/watch",
            "-f", "framemd5", "-",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(watch.communicate(), 60)
        # any dev relay channel plays the same way: here the test source's input channel
        probe = await asyncio.create_subprocess_exec(
            "ffmpeg", "-v", "error", "-t", "2", "-i", f"{base}/stream/watch?channel={source['name']}",
            "-f", "framemd5", "-", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        probe_out, probe_err = await asyncio.wait_for(probe.communicate(), 60)
        assert probe.returncode == 0 and probe_err == b"", probe_err.decode()
        assert sum(not line.startswith(b"#") for line in probe_out.splitlines()) >= fps
    finally:
        await api.stop(stream_id)
        await api.close()
        comfyui.request("DELETE", f"/trickle/test-source/{source['name']}")
    stderr = err.decode()
    assert watch.returncode == 0, stderr
    assert not BROKEN_STREAM.search(stderr), stderr
    frames = [line for line in out.decode().splitlines() if line and not line.startswith("#")]
    assert 0.85 * fps * 10 <= len(frames) <= 1.05 * fps * 10 + 1, len(frames)
