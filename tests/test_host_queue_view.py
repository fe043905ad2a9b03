"""host.queue_view: a person's queue, job list and history show only people's prompts, never a stream's
frame prompts (issue 21 item 5: "2 active" the whole time a stream ran, its jobs in the job list and
"Job completed" banners). Unit tests on the pure filters, then the real ComfyUI while a stream runs."""

from __future__ import annotations

import asyncio

import pytest
from comfy_trickle.devtools.stream_harness import INVERT, publish_synthetic
from comfy_trickle.host.queue_view import (
    frame_prompt_ids,
    person_history,
    person_jobs,
    person_queue,
    person_queue_info,
)

FRAME = {"client_id": "comfy-trickle:cam"}
PERSON = {"client_id": "browser-sid"}


def item(prompt_id: str, extra_data: dict) -> tuple:
    return (1, prompt_id, {}, extra_data, [], {})


class FakeQueue:
    def __init__(self, running=(), pending=(), history=None) -> None:
        self.running, self.pending, self.history = list(running), list(pending), history or {}

    def get_current_queue_volatile(self):
        return self.running, self.pending


def test_queue_and_queue_count_leave_out_frame_prompts():
    queue = FakeQueue(running=[item("f1", FRAME)], pending=[item("f2", FRAME), item("p1", PERSON)])
    assert person_queue_info(queue) == {"exec_info": {"queue_remaining": 1}}
    answer = person_queue({"queue_running": [list(i) for i in queue.running],
                           "queue_pending": [list(i[:5]) for i in queue.pending]})  # fmt: skip
    assert answer["queue_running"] == []
    assert [entry[1] for entry in answer["queue_pending"]] == ["p1"]


def test_history_and_jobs_leave_out_frame_prompts_and_their_total_drops():
    history = {"f0": {"prompt": list(item("f0", FRAME))}, "p0": {"prompt": list(item("p0", PERSON))}}
    queue = FakeQueue(running=[item("f1", FRAME)], history=history)
    assert set(person_history(history)) == {"p0"}
    assert frame_prompt_ids(queue) == {"f0", "f1"}
    jobs = {"jobs": [{"id": "f1"}, {"id": "p0"}, {"id": "f0"}], "pagination": {"total": 3, "offset": 0}}
    assert person_jobs(jobs, frame_prompt_ids(queue)) == {
        "jobs": [{"id": "p0"}], "pagination": {"total": 1, "offset": 0}}  # fmt: skip


def test_answers_of_other_shapes_pass_unchanged():
    assert person_queue(["not", "a", "dict"]) == ["not", "a", "dict"]
    assert person_history({"p": "odd entry"}) == {"p": "odd entry"}
    assert person_jobs({"error": "bad status"}, {"x"}) == {"error": "bad status"}


def user_prompt() -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 7}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


def frame_ids_in_the_raw_queue(comfyui) -> set[str]:
    """The frame prompts ComfyUI's queue holds right now (tests/custom_nodes/cache_probe's raw view)."""
    status, raw = comfyui.get("/raw-queue")
    assert status == 200
    return {entry[1] for entry in raw["queue_running"] + raw["queue_pending"]
            if entry[3].get("client_id", "").startswith("comfy-trickle:")}  # fmt: skip


def ids_people_see(comfyui) -> set[str]:
    """Every prompt id of a person's view: queue, history and, where ComfyUI has it, the jobs list."""
    status, queue = comfyui.get("/queue")
    assert status == 200
    seen = {entry[1] for entry in queue["queue_running"] + queue["queue_pending"]}
    status, history = comfyui.get("/history?max_items=200")
    assert status == 200
    seen |= set(history)
    status, jobs = comfyui.get("/api/jobs?limit=200")
    if status == 200:  # ComfyUI 0.33 and on: the jobs API of frontend 1.49's job list
        seen |= {job["id"] for job in jobs["jobs"]}
    return seen


@pytest.mark.relay(channels=[("qv-in", "video/MP2T"), ("qv-out", "video/MP2T")])
async def test_a_running_stream_shows_in_no_persons_queue_jobs_or_history(api, relay, comfyui):
    person_id = await asyncio.to_thread(comfyui.queue_prompt, user_prompt())
    await asyncio.to_thread(comfyui.wait_for_history, person_id)
    status, body = await api.start("qv", relay.channel_url("qv-in"), relay.channel_url("qv-out"), INVERT)
    assert status == 200, body
    source = asyncio.create_task(publish_synthetic(relay.channel_url("qv-in"), 120))
    frame_ids: set[str] = set()
    shown: set[str] = set()
    queue_counts: list[int] = []
    try:
        for _ in range(40):  # while the stream runs: a frame prompt is queued or running nearly always
            now = await asyncio.to_thread(frame_ids_in_the_raw_queue, comfyui)
            frame_ids |= now
            shown |= now & await asyncio.to_thread(ids_people_see, comfyui)
            status, prompt_info = await asyncio.to_thread(comfyui.get, "/prompt")
            queue_counts.append(prompt_info["exec_info"]["queue_remaining"])
            for frame_id in now:
                status, job = await asyncio.to_thread(comfyui.get, f"/api/jobs/{frame_id}")
                assert status == 404, job  # unknown on 0.3.75, hidden on 0.33
            await asyncio.sleep(0.05)
    finally:
        await source
    assert len(frame_ids) >= 3, frame_ids  # the samples were taken while frames ran
    assert shown == set(), sorted(shown)[:10]
    assert set(queue_counts) == {0}, queue_counts
    assert person_id in await asyncio.to_thread(ids_people_see, comfyui)  # a person's own prompt stays
