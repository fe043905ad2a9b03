"""Live control end to end (issue 11): a running stream's workflow and size change without stopping it.

Real ComfyUI (session fixture), our relay on 127.0.0.1, real H.264; outputs are decoded and checked by
their pixels (the synthetic pattern's frame index, inverted or not, blurred or not, marked or not)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time

import numpy as np
import pytest
from comfy_trickle.devtools.stream_harness import (
    INVERT,
    collect_output_timed,
    publish_synthetic,
    stream_channels,
)
from comfy_trickle.media.synthetic import make_test_frame, read_frame_index
from comfy_trickle.trickle.publisher import TricklePublisher

SIZE = 128
NO_DROPS = 60.0
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240), pytest.mark.relay(autocreate=True)]

PASSTHROUGH = {
    "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
    "3": {"class_type": "TrickleOutput", "inputs": {"images": ["1", 0], "stream_id": ""}},
}




def unmarked(rgb: np.ndarray) -> np.ndarray:
    """The picture without its bottom rows (where a warm-up placeholder carries its "updating" mark)."""
    return rgb[: rgb.shape[0] - max(4, rgb.shape[0] // 16)].astype(np.int16)


def classify(rgb: np.ndarray) -> tuple[int, bool]:
    """(frame index, inverted?) of an output frame of the synthetic pattern, whichever reading fits best."""
    readings = []
    for inverted, picture in ((False, rgb), (True, 255 - rgb)):
        index = read_frame_index(picture)
        expected = make_test_frame(index, rgb.shape[1], rgb.shape[0])
        error = float(np.abs(unmarked(picture) - unmarked(expected)).mean())
        readings.append((error, index, inverted))
    error, index, inverted = min(readings)
    assert error < 12, f"frame matches neither the pattern nor its inverse (error {error:.1f})"
    return index, inverted


def is_marked(rgb: np.ndarray) -> bool:
    """The "updating" mark: amber and dark stripes on the bottom rows."""
    bottom = rgb[-2:].reshape(-1, 3).astype(np.int16)
    amber = (np.abs(bottom - np.array([255, 200, 0])).sum(axis=1) < 120).mean()
    dark = (np.abs(bottom - np.array([40, 40, 40])).sum(axis=1) < 90).mean()
    return bool(amber > 0.25 and dark > 0.25)


async def start_stream(api, relay, name, workflow, **params):
    sub_url, pub_url = stream_channels(relay, name)
    status, body = await api.start(name, sub_url, pub_url, workflow, SIZE, SIZE, max_backlog_s=NO_DROPS,
                                   **params)
    assert status == 200, body
    collector = asyncio.create_task(collect_output_timed(pub_url))
    return sub_url, collector


def assert_all_frames(output, final: dict, frame_count: int) -> None:
    """The engine sent every input frame once, and the decoded output has them all."""
    counters = final["counters"]
    assert counters["frames_in"] == counters["frames_out"] == frame_count, counters
    assert counters["frames_dropped"] == 0, counters
    assert len(output.frames) == frame_count


def assert_in_order(output, final: dict, frame_count: int) -> list[bool]:
    """Every input frame exactly once, in order, pts rising; returns whether each one is inverted."""
    assert_all_frames(output, final, frame_count)
    readings = [classify(f.rgb) for f in output.frames]
    indices = [i for i, _ in readings]
    assert indices == list(range(len(indices))), [(n, i) for n, i in enumerate(indices) if n != i][:10]
    pts = [f.pts for f in output.frames]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    return [inverted for _, inverted in readings]


async def test_swap_invert_to_passthrough_mid_stream(api, relay):
    sub_url, collector = await start_stream(api, relay, "swap", INVERT)
    publisher = asyncio.create_task(publish_synthetic(sub_url, 120, width=SIZE, height=SIZE))
    await api.wait_status("swap", lambda s: s["counters"]["frames_out"] >= 30)
    status, body = await api.update("swap", {"prompt": PASSTHROUGH})
    assert status == 200, body
    assert body["status"] == "success" and body["applied"] is True and body["generation"] == 2
    assert body["request_id"] == "swap" and body["config"]["workflow_nodes"] == 2
    await publisher
    output = await asyncio.wait_for(collector, 60)
    final = await api.wait_state("swap", {"completed", "error"})
    assert final["state"] == "completed", final
    inverted = assert_in_order(output, final, 120)
    switch = inverted.index(False)
    assert switch >= 30 and inverted == [True] * switch + [False] * (len(inverted) - switch), inverted
    assert final["generation"] == 2 and final["generation_applied_at"] is not None
    assert final["update_pending"] is False and final["counters"]["updates_applied"] == 1


def blur_workflow(tag: str, radius: int) -> dict:
    """input -> ImageBlur(radius) -> TagImage(tag of a frame-independent counting node) -> output."""
    return {
        "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
        "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": radius, "sigma": 3.0}},
        "5": {"class_type": "TrickleTestCountRuns", "inputs": {"tag": tag}},
        "6": {"class_type": "TrickleTestTagImage", "inputs": {"image": ["2", 0], "tag": ["5", 0]}},
        "3": {"class_type": "TrickleOutput", "inputs": {"images": ["6", 0], "stream_id": ""}},
    }


def distance_from_source(rgb: np.ndarray, index: int) -> float:
    """Mean absolute difference from input frame ``index`` (grows with the blur radius)."""
    return float(np.abs(rgb.astype(np.int16) - make_test_frame(index, SIZE, SIZE).astype(np.int16)).mean())


async def test_blur_radius_change_applies_and_unchanged_nodes_stay_cached(api, relay):
    tag = f"blur{time.monotonic_ns()}"
    sub_url, collector = await start_stream(api, relay, "blur", blur_workflow(tag, 1))
    publisher = asyncio.create_task(publish_synthetic(sub_url, 90, width=SIZE, height=SIZE))
    await api.wait_status("blur", lambda s: s["counters"]["frames_out"] >= 20)
    status, body = await api.update("blur", {"prompt": json.dumps(blur_workflow(tag, 12))})  # a JSON string
    assert status == 200 and body["applied"] is True, body
    # the same params again: a no-op (no new generation)
    status, again = await api.update("blur", {"prompt": blur_workflow(tag, 12)})
    assert status == 200 and again["applied"] is False and again["generation"] == body["generation"], again
    await publisher
    output = await asyncio.wait_for(collector, 60)
    final = await api.wait_state("blur", {"completed", "error"})
    assert final["state"] == "completed", final
    assert_all_frames(output, final, 90)
    distances = [distance_from_source(f.rgb, i) for i, f in enumerate(output.frames)]
    before, after = np.mean(distances[:15]), np.mean(distances[-15:])
    assert after > 2 * before, (before, after)
    _, counts = await api.call("GET", "/trickle-test/counts")
    assert counts[f"count:{tag}"] == 1, counts  # the loader-like node ran once across both generations
    assert final["counters"]["updates_applied"] == 1 and final["counters"]["updates_noop"] == 1


async def test_invalid_update_is_refused_and_the_old_workflow_keeps_running(api, relay):
    sub_url, collector = await start_stream(api, relay, "bad-update", INVERT)
    publisher = asyncio.create_task(publish_synthetic(sub_url, 60, width=SIZE, height=SIZE))
    await api.wait_status("bad-update", lambda s: s["counters"]["frames_out"] >= 10)
    broken = {**INVERT, "2": {"class_type": "ImageBlur",
                              "inputs": {"image": ["1", 0], "blur_radius": 999, "sigma": 1.0}}}
    status, body = await api.update("bad-update", {"prompt": broken})
    assert status == 400, body
    assert "2" in body["node_errors"] and body["node_errors"]["2"]["class_type"] == "ImageBlur", body
    assert "node 2 (ImageBlur)" in body["error"]
    status, body = await api.update("bad-update", {"width": 100})  # not a multiple of 8
    assert status == 400 and body.get("field") == "params.width", body
    status, body = await api.call("POST", "/stream/bad/update", {"prompt": INVERT})  # not {"params": ...}
    assert status == 400, body
    status, body = await api.update("nobody", {"width": 128})
    assert status == 404, body
    await publisher
    output = await asyncio.wait_for(collector, 60)
    final = await api.wait_state("bad-update", {"completed", "error"})
    assert all(assert_in_order(output, final, 60))  # every frame still inverted
    assert final["generation"] == 1 and final["counters"]["updates_rejected"] == 2
    status, body = await api.update("bad-update", {"width": 128})  # the stream ended
    assert status == 409 and body["state"] == "completed", body


async def test_byoc_params_route_updates_the_stream_named_by_x_stream_id(api, relay):
    sub_url, collector = await start_stream(api, relay, "byoc", INVERT)
    publisher = asyncio.create_task(publish_synthetic(sub_url, 60, width=SIZE, height=SIZE))
    await api.wait_status("byoc", lambda s: s["counters"]["frames_out"] >= 15)
    async with api.http.post(f"{api.base_url}/api/stream/params", json={"prompt": PASSTHROUGH},
                             headers={"X-Stream-Id": "byoc"}) as response:
        body = await response.json()
        assert response.status == 200 and body["generation"] == 2, body
    await publisher
    output = await asyncio.wait_for(collector, 60)
    final = await api.wait_state("byoc", {"completed", "error"})
    inverted = assert_in_order(output, final, 60)
    assert inverted[0] is True and inverted[-1] is False


async def test_control_channel_snapshots_keepalive_replay_big_and_invalid_messages(api, relay):
    relay.relay.create_channel("ctl-control", "application/json")
    control_url = relay.channel_url("ctl-control")
    sub_url, pub_url = stream_channels(relay, "ctl")
    status, body = await api.call("POST", "/stream/start", {
        "gateway_request_id": "ctl", "subscribe_url": sub_url, "publish_url": pub_url,
        "control_url": control_url,
        "params": {"width": SIZE, "height": SIZE, "prompt": INVERT, "max_backlog_s": NO_DROPS},
    })
    assert status == 200, body
    collector = asyncio.create_task(collect_output_timed(pub_url))
    source = asyncio.create_task(publish_synthetic(sub_url, 240, width=SIZE, height=SIZE))
    control = TricklePublisher(control_url, mime_type="application/json")
    try:
        await api.wait_status("ctl", lambda s: s["counters"]["frames_out"] >= 10
                          and s["control"]["state"] == "listening")
        big = "A" * (1024 * 1024)  # a 1 MiB param (base64 images travel like this)
        snapshot = {"prompt": PASSTHROUGH, "width": SIZE, "height": SIZE, "max_backlog_s": NO_DROPS,
                    "reference_image": big}
        await control.write_segment(json.dumps(snapshot).encode())
        await api.wait_status("ctl", lambda s: s["generation"] == 2)
        await control.write_segment(b'{"keep":"alive"}')
        await control.write_segment(json.dumps(snapshot).encode())  # a replay
        await api.wait_status("ctl", lambda s: s["counters"]["updates_noop"] == 1)
        await control.write_segment(b"this is not json")
        await api.wait_status("ctl", lambda s: s["control"]["rejected"] == 1)
        await control.write_segment(json.dumps({**snapshot, "width": 3}).encode())
        status = await api.wait_status("ctl", lambda s: s["control"]["rejected"] == 2)
        assert "params.width" in status["control"]["last_error"]
        assert status["control"]["messages"] == 4 and status["generation"] == 2, status["control"]
    finally:
        await control.close(delete_channel=True)  # the channel ends: the stream goes on
    status = await api.wait_status("ctl", lambda s: s["control"]["state"] == "ended")
    assert status["state"] == "running"
    await source
    output = await asyncio.wait_for(collector, 60)
    final = await api.wait_state("ctl", {"completed", "error"})
    assert final["state"] == "completed", final
    inverted = assert_in_order(output, final, 240)
    assert inverted[0] is True and inverted[-1] is False


async def test_slow_first_run_never_freezes_the_output(api, relay):
    tag = f"warm{time.monotonic_ns()}"
    workflow = {
        "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
        "2": {"class_type": "TrickleTestSlowFirst",
              "inputs": {"image": ["1", 0], "tag": tag, "seconds": 3.0}},
        "3": {"class_type": "TrickleOutput", "inputs": {"images": ["2", 0], "stream_id": ""}},
    }
    sub_url, collector = await start_stream(api, relay, "warm", workflow)
    await publish_synthetic(sub_url, 180, width=SIZE, height=SIZE)
    output = await asyncio.wait_for(collector, 60)
    final = await api.wait_state("warm", {"completed", "error"})
    assert final["state"] == "completed", final
    # every input frame reached the output exactly once, in order; the first ones as marked placeholders
    assert not any(assert_in_order(output, final, 180))
    marked = [is_marked(f.rgb) for f in output.frames]
    covered = final["counters"]["frames_covered"]
    assert covered >= 45 and marked[:covered] == [True] * covered, (covered, marked[:100])
    assert not any(marked[covered + 30 :])  # afterwards the workflow's own frames, unmarked
    # the live frames that came during the slow run did not queue behind it
    assert final["counters"]["frames_processed"] <= 180 - covered + 1
    gap = output.longest_gap()
    assert gap <= 1.0, f"output silent for {gap:.2f} s while the workflow warmed up"


async def test_a_workflow_that_puts_out_no_frame_in_time_ends_in_error_instead_of_covering(api, relay):
    workflow = {
        "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
        "2": {"class_type": "TrickleTestSlow", "inputs": {"image": ["1", 0], "seconds": 4.0}},
        "3": {"class_type": "TrickleOutput", "inputs": {"images": ["2", 0], "stream_id": ""}},
    }
    sub_url, collector = await start_stream(api, relay, "nofirst", workflow, first_frame_timeout_s=1.5)
    publisher = asyncio.create_task(publish_synthetic(sub_url, 150, width=SIZE, height=SIZE))
    try:
        # while it warms up the status says for how long, and what it will wait
        warming = await api.wait_status("nofirst", lambda s: (s["warm_up"] or {}).get("waited_s", 0) >= 0.5)
        assert warming["state"] == "running" and warming["warm_up"]["timeout_s"] == 1.5, warming
        final = await api.wait_state("nofirst", {"completed", "error"})
    finally:
        publisher.cancel()
        with contextlib.suppress(BaseException):
            await publisher  # its trickle session closes
    assert final["state"] == "error", final
    message = final["error"]["message"]
    assert "put out no frame within 1.5 s" in message and "params.first_frame_timeout_s" in message, message
    counters = final["counters"]
    assert counters["frames_processed"] == 0 and counters["frames_covered"] > 0, counters
    output = await asyncio.wait_for(collector, 30)
    # what went out before the error was the input marked "updating", never as if processed
    assert output.frames and all(is_marked(f.rgb) for f in output.frames)
    assert not any(inverted for _, inverted in map(classify, (f.rgb for f in output.frames)))


def probe_video(path) -> tuple[int, str, dict]:
    """ffprobe's verdict on one output segment: (exit code, errors, its video stream with a frame count)."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-count_frames", "-show_streams", "-select_streams", "v",
         str(path)],
        capture_output=True, text=True, check=False,
    )
    streams = json.loads(result.stdout or "{}").get("streams") or [{}]
    return result.returncode, result.stderr, streams[0]


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe")
async def test_size_change_takes_effect_at_the_next_segment(api, relay, tmp_path):
    sub_url, collector = await start_stream(api, relay, "size", PASSTHROUGH)
    publisher = asyncio.create_task(publish_synthetic(sub_url, 120, width=SIZE, height=SIZE))
    await api.wait_status("size", lambda s: s["counters"]["frames_out"] >= 20)
    status, body = await api.update("size", {"width": 192, "height": 96})
    assert status == 200 and body["config"]["width"] == 192 and body["config"]["height"] == 96, body
    await publisher
    output = await asyncio.wait_for(collector, 60)
    final = await api.wait_state("size", {"completed", "error"})
    assert_all_frames(output, final, 120)
    sizes = [f.rgb.shape[:2] for f in output.frames]
    assert sizes[0] == (SIZE, SIZE) and sizes[-1] == (96, 192), sizes
    probed = []
    for number, segment in enumerate(output.segments):
        path = tmp_path / f"seg{number}.ts"
        path.write_bytes(segment)
        returncode, stderr, stream = probe_video(path)
        assert returncode == 0 and not stderr.strip(), (number, stderr)
        probed.append((stream["width"], stream["height"], int(stream["nb_read_frames"])))
    assert {(w, h) for w, h, _ in probed} == {(SIZE, SIZE), (192, 96)}, probed
    assert sum(n for _, _, n in probed) == len(output.frames), probed


async def test_swap_to_a_slow_workflow_keeps_the_output_moving(api, relay):
    tag = f"slowswap{time.monotonic_ns()}"
    slow = {
        "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
        "2": {"class_type": "TrickleTestSlowFirst",
              "inputs": {"image": ["1", 0], "tag": tag, "seconds": 3.0}},
        "3": {"class_type": "TrickleOutput", "inputs": {"images": ["2", 0], "stream_id": ""}},
    }
    sub_url, collector = await start_stream(api, relay, "slowswap", INVERT)
    publisher = asyncio.create_task(publish_synthetic(sub_url, 210, width=SIZE, height=SIZE))
    await api.wait_status("slowswap", lambda s: s["counters"]["frames_out"] >= 30)
    status, body = await api.update("slowswap", {"prompt": slow})
    assert status == 200 and body["generation"] == 2, body
    status = await api.wait_status("slowswap", lambda s: s["counters"]["frames_covered"] > 0)
    assert status["generation"] == 2 and status["state"] == "running"
    await publisher
    output = await asyncio.wait_for(collector, 60)
    final = await api.wait_state("slowswap", {"completed", "error"})
    inverted = assert_in_order(output, final, 210)
    marked = [is_marked(f.rgb) for f in output.frames]
    switch = inverted.index(False)
    covered = final["counters"]["frames_covered"]
    assert switch >= 30 and not any(inverted[switch:]) and covered >= 45
    # from the switch on: the input, marked "updating", until the slow workflow's first frame came out
    assert marked[switch : switch + covered] == [True] * covered and not any(marked[:switch])
    gap = output.longest_gap()
    assert gap <= 1.0, f"output silent for {gap:.2f} s while the new workflow warmed up"
