"""The live-control update engine's rules (streams/updates.py) and the warm-up cover's claim
(streams/warmup.py), as pure logic: a small fake stands in for ComfyUI's validation."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from comfy_trickle.media.marks import draw_updating_mark
from comfy_trickle.streams.config import parse_start_request
from comfy_trickle.streams.errors import ApiError, WorkflowInvalid
from comfy_trickle.streams.handoff import InputFrame
from comfy_trickle.streams.updates import Generation, UpdateEngine, merged_params
from comfy_trickle.streams.warmup import WarmupCover
from comfy_trickle.streams.workflow import PromptBuilder, prepare_workflow

INVERT = {
    "1": {"class_type": "TrickleInput", "inputs": {}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "TrickleOutput", "inputs": {"images": ["2", 0]}},
}
PASSTHROUGH = {
    "1": {"class_type": "TrickleInput", "inputs": {}},
    "3": {"class_type": "TrickleOutput", "inputs": {"images": ["1", 0]}},
}


def start_config(**params):
    return parse_start_request({
        "gateway_request_id": "s", "subscribe_url": "http://127.0.0.1:1/in", "publish_url": "http://127.0.0.1:1/out",
        "params": {"width": 128, "height": 128, "prompt": INVERT, **params},
    })


def engine(validated: list | None = None) -> UpdateEngine:
    async def make_builder(config):
        if "Broken" in {node["class_type"] for node in config.workflow.values()}:
            raise WorkflowInvalid("node 9 (Broken) is broken", {"9": {"class_type": "Broken", "errors": []}})
        if validated is not None:
            validated.append(config)
        return PromptBuilder(prepare_workflow(config.workflow), "ct1_", config.stream_id)

    first = start_config(seed=1)
    builder = PromptBuilder(prepare_workflow(INVERT), "ct1_", "s")
    return UpdateEngine(Generation(1, first, builder), make_builder)


def test_rest_updates_merge_and_snapshots_replace_all_but_prompt_and_size():
    config = start_config(seed=1, strength=0.5)
    merged = merged_params(config, {"strength": 0.9}, snapshot=False)
    assert merged["seed"] == 1 and merged["strength"] == 0.9 and merged["prompt"] == INVERT
    snapshot = merged_params(config, {"strength": 0.9}, snapshot=True)
    assert "seed" not in snapshot and snapshot["prompt"] == INVERT and snapshot["width"] == 128


async def test_an_update_waits_as_pending_until_the_pump_takes_it_between_frames():
    updates = engine()
    outcome = await updates.update({"prompt": PASSTHROUGH})
    assert (outcome.generation, outcome.applied) == (2, True)
    assert updates.status() == {"generation": 1, "generation_applied_at": None, "update_pending": True}
    taken = updates.take()
    assert taken is not None and taken.number == 2 and updates.take() is None
    status = updates.status()
    assert status["generation"] == 2 and status["update_pending"] is False
    assert isinstance(status["generation_applied_at"], float)
    assert updates.counts["updates_applied"] == 1
    assert updates.warming()  # generation 2 has produced no frame yet
    updates.output_seen(2)
    assert not updates.warming()


async def test_same_params_again_are_a_no_op_and_a_burst_coalesces_to_the_newest():
    validated: list = []
    updates = engine(validated)
    again = await updates.update({"seed": 1})
    assert again.applied is False and again.generation == 1 and validated == []
    results = await asyncio.gather(*(updates.update({"seed": seed}) for seed in (2, 3, 4)))
    assert [r.generation for r in results] == [2, 3, 4]
    taken = updates.take()
    assert taken is not None and taken.number == 4 and taken.config.params["seed"] == 4
    assert updates.counts["updates_superseded"] == 2 and updates.counts["updates_noop"] == 1
    replay = await updates.update({"seed": 4})  # the one now running: a no-op
    assert replay.applied is False and replay.generation == 4


async def test_invalid_updates_change_nothing_and_are_counted():
    updates = engine()
    with pytest.raises(ApiError) as bad_size:
        await updates.update({"width": 100})
    assert bad_size.value.http_status == 400 and bad_size.value.details["field"] == "params.width"
    with pytest.raises(WorkflowInvalid) as broken:
        await updates.update({"prompt": {**INVERT, "9": {"class_type": "Broken", "inputs": {}}}})
    assert "9" in broken.value.body()["node_errors"]
    with pytest.raises(ApiError):
        await updates.update(["not", "an", "object"])
    assert updates.counts["updates_rejected"] == 3
    assert updates.pending is None and updates.current.number == 1


def test_cover_and_real_output_claim_each_frame_once():
    submitted = []
    cover = WarmupCover(lambda frame, images: submitted.append((frame.index, images)) or True, lambda: None)
    frame = InputFrame(index=7, picture=np.zeros((32, 32, 3), np.uint8), pts=0, time_base=None,
                       media_time=0.0, arrival=0.0)
    cover.cover(frame)
    assert not cover.claim(frame)  # the real output that comes later is discarded
    cover.cover(frame)
    assert len(submitted) == 1 and cover.frames_covered == 1
    marked = submitted[0][1][0]
    assert marked.shape == (32, 32, 3) and marked[-1].any() and not marked[:-2].any()


def test_updating_mark_stays_on_the_bottom_rows():
    picture = np.full((128, 64, 3), 100, np.uint8)
    marked = draw_updating_mark(picture, phase=3)
    changed_rows = np.nonzero((marked != picture).any(axis=(1, 2)))[0]
    assert changed_rows.min() >= 124 and (picture == 100).all()
