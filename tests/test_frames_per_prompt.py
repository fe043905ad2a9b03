"""``params.max_frames_per_prompt`` on a real ComfyUI: frames that wait behind a slow prompt share the next
one as an IMAGE batch, and every frame still comes out as itself, at its own pts, in order."""

from __future__ import annotations

import asyncio

import pytest
from comfy_trickle.devtools.stream_harness import collect_output, publish_synthetic, stream_channels
from comfy_trickle.media.synthetic import make_test_frame, psnr, read_frame_index

SIZE = 128
FRAMES = 48
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180), pytest.mark.relay(autocreate=True)]

# 40 ms per prompt (whatever its batch) against frames arriving every 8 ms: frames wait behind each prompt
SLOW_INVERT = {
    "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
    "2": {"class_type": "TrickleTestSlow", "inputs": {"image": ["1", 0], "seconds": 0.04}},
    "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
    "4": {"class_type": "TrickleOutput", "inputs": {"images": ["3", 0], "stream_id": ""}},
}
# one image out of each prompt, however many frames it carries: the first of its batch
FIRST_OF_BATCH = {
    **SLOW_INVERT,
    "5": {"class_type": "ImageFromBatch", "inputs": {"image": ["3", 0], "batch_index": 0, "length": 1}},
    "4": {"class_type": "TrickleOutput", "inputs": {"images": ["5", 0], "stream_id": ""}},
}


async def run_fast_source(api, relay, name: str, workflow: dict, **params):
    """Publish FRAMES frames at 120 fps into a stream of ``workflow``; (source, output, final status)."""
    sub_url, pub_url = stream_channels(relay, name)
    status, body = await api.start(name, sub_url, pub_url, workflow, SIZE, SIZE, max_backlog_s=60.0, **params)
    assert status == 200, body
    collector = asyncio.create_task(collect_output(pub_url))
    source = await publish_synthetic(sub_url, FRAMES, width=SIZE, height=SIZE, fps=120.0)
    output = await asyncio.wait_for(collector, 60)
    final = await api.wait_state(name, {"completed", "error"})
    assert final["state"] == "completed", final
    return source, output, final


async def test_waiting_frames_share_a_prompt_and_each_comes_out_as_itself(api, relay):
    _, _, alone = await run_fast_source(api, relay, "batch-off", SLOW_INVERT)
    assert alone["counters"]["prompts"] == FRAMES, alone["counters"]  # the default: a prompt per frame

    source, output, final = await run_fast_source(api, relay, "batch-4", SLOW_INVERT, max_frames_per_prompt=4)
    counters = final["counters"]
    assert counters["frames_in"] == counters["frames_processed"] == counters["frames_out"] == FRAMES, counters
    assert counters["frames_dropped"] == 0, counters
    # batches of up to 4 (the first frame finds none waiting): far fewer prompts than frames
    assert FRAMES / 4 <= counters["prompts"] <= FRAMES / 2, counters
    indices = [read_frame_index(255 - frame.rgb) for frame in output.frames]
    assert indices == list(range(FRAMES)), indices
    offset = output.frames[0].pts - source.pts(0)
    for index, frame in enumerate(output.frames):  # each at its own input frame's pts
        assert frame.pts - source.pts(index) == offset, (index, frame.pts)
        assert psnr(255 - frame.rgb, make_test_frame(index, SIZE, SIZE)) > 28.0


async def test_a_workflow_that_returns_fewer_images_than_frames_spreads_them_over_the_batch(api, relay):
    source, output, final = await run_fast_source(
        api, relay, "batch-first", FIRST_OF_BATCH, max_frames_per_prompt=4
    )
    counters = final["counters"]
    assert counters["frames_processed"] == FRAMES and counters["frames_dropped"] == 0, counters
    # one image per prompt, each the first frame of its batch, at that frame's pts
    assert len(output.frames) == counters["frames_out"] == counters["prompts"] < FRAMES, counters
    indices = [read_frame_index(255 - frame.rgb) for frame in output.frames]
    assert indices[0] == 0 and indices == sorted(set(indices)), indices
    assert max(b - a for a, b in zip(indices, indices[1:], strict=False)) <= 4, indices
    offset = output.frames[0].pts - source.pts(0)
    for index, frame in zip(indices, output.frames, strict=True):
        assert frame.pts - source.pts(index) == offset, (index, frame.pts)


@pytest.mark.parametrize("value", [0, 17, 2.0, "4", True])
async def test_an_out_of_range_frames_per_prompt_is_refused_naming_the_field(api, relay, value):
    sub_url, pub_url = stream_channels(relay, "batch-bad")
    status, body = await api.start("batch-bad", sub_url, pub_url, SLOW_INVERT, SIZE, SIZE,
                                   max_frames_per_prompt=value)  # fmt: skip
    assert status == 400, body
    assert body["field"] == "params.max_frames_per_prompt", body
    assert "1..16" in body["error"], body
