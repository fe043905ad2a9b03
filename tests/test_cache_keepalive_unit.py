"""The cache keep-alive and fairness logic without ComfyUI: what each prompt carries, the on-prompt
handler's rewrite of a user's prompt, executor shares and the fair-share wait."""

from __future__ import annotations

import asyncio
import math
import time

from comfy_trickle.host.on_prompt import install_keepalive_handler, keepalive_handler
from comfy_trickle.streams.fairness import ExecutorFairness
from comfy_trickle.streams.keepalive import PIN_REFRESH_S, CacheKeepAlive
from comfy_trickle.streams.workflow import PromptBuilder, prepare_workflow

LIVE = {
    "1": {"class_type": "TrickleInput", "inputs": {}},
    "5": {"class_type": "Loader", "inputs": {"name": "m"}},
    "6": {"class_type": "Encode", "inputs": {"model": ["5", 0]}},
    "7": {"class_type": "Apply", "inputs": {"image": ["1", 0], "model": ["6", 0]}},
    "3": {"class_type": "TrickleOutput", "inputs": {"images": ["7", 0]}},
    "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
    "9": {"class_type": "Unused", "inputs": {}},
}


class Output:
    OUTPUT_NODE = True


NODE_CLASSES = dict.fromkeys(("Loader", "Encode", "Apply", "EmptyImage", "Sink"), object)
NODE_CLASSES["PreviewImage"] = Output
NODE_CLASSES["TrickleInput"] = object


def builder(prefix: str = "ct1_", stream_id: str = "s") -> PromptBuilder:
    return PromptBuilder(prepare_workflow(LIVE), prefix, stream_id)


def test_a_frame_prompt_holds_the_outputs_ancestors_and_marks_the_frame_independent_ones():
    live = builder()
    prompt = live.build(7)
    assert set(prompt) == {"ct1_1", "ct1_5", "ct1_6", "ct1_7", "ct1_3"}  # no preview, no unused node
    assert set(live.frame_independent_nodes()) == {"ct1_5", "ct1_6"}
    assert prompt["ct1_1"]["inputs"]["frame_ticket"] == 7


def test_a_stream_carries_others_frame_independent_nodes_and_the_last_user_prompt_as_copies():
    keepalive = CacheKeepAlive()
    a, b = builder("ct1_", "a"), builder("ct2_", "b")
    keepalive.add_stream("a", a.frame_independent_nodes)
    keepalive.add_stream("b", b.frame_independent_nodes)
    keepalive.remember_user_prompt({"u1": {"class_type": "EmptyImage", "inputs": {}}})
    prompt = b.build(1, keepalive.for_stream("b"))
    assert {"ct1_5", "ct1_6", "u1"} <= set(prompt) and not {"ct1_1", "ct1_7", "ct1_3"} & set(prompt)
    prompt["ct1_5"]["is_changed"] = math.nan  # ComfyUI writes fingerprints into the prompt's nodes...
    assert "is_changed" not in a.frame_independent_nodes()["ct1_5"]  # ...never into the stream's own
    assert "is_changed" not in a.build(2)["ct1_5"]
    keepalive.remove_stream("a")
    assert "ct1_5" not in keepalive.for_stream("b")


def test_carried_copies_keep_the_fingerprint_comfyui_wrote_until_renewed():
    """ComfyUI fingerprints a node (e.g. LoadImage: a SHA-256 of its file) unless the node object holds
    ``is_changed`` already; a stream's carried copies are shared by its prompts, so that happens once per
    PIN_REFRESH_S instead of every frame."""
    now = [100.0]
    keepalive = CacheKeepAlive(clock=lambda: now[0])
    a, b = builder("ct1_", "a"), builder("ct2_", "b")
    keepalive.add_stream("a", a.frame_independent_nodes)
    keepalive.add_stream("b", b.frame_independent_nodes)
    keepalive.remember_user_prompt({"u1": {"class_type": "LoadImage", "inputs": {"image": "big.png"}}})
    first = b.build(1, keepalive.for_stream("b"))
    first["u1"]["is_changed"] = ["sha256 of big.png"]  # as ComfyUI's IsChangedCache does
    first["ct1_5"]["is_changed"] = ["a's loader"]
    first["ct2_5"]["is_changed"] = ["b's own loader"]
    now[0] += PIN_REFRESH_S / 2
    second = b.build(2, keepalive.for_stream("b"))
    assert second["u1"]["is_changed"] == ["sha256 of big.png"]  # carried: pinned
    assert second["ct1_5"]["is_changed"] == ["a's loader"]
    assert "is_changed" not in second["ct2_5"]  # the stream's own nodes: fingerprinted every frame
    assert second["ct2_1"] is not first["ct2_1"] and second["ct2_1"]["inputs"]["frame_ticket"] == 2
    # the sources never see what ComfyUI wrote: a's own prompts, other streams' copies, a new user prompt
    assert "is_changed" not in a.build(3, keepalive.for_stream("a"))["ct1_5"]
    assert "is_changed" not in keepalive.for_stream("a")["u1"]
    now[0] += PIN_REFRESH_S
    renewed = b.build(4, keepalive.for_stream("b"))
    assert "is_changed" not in renewed["u1"] and "is_changed" not in renewed["ct1_5"]
    keepalive.remember_user_prompt({"u1": {"class_type": "LoadImage", "inputs": {"image": "other.png"}}})
    assert b.build(5, keepalive.for_stream("b"))["u1"]["inputs"] == {"image": "other.png"}  # at once


def test_the_on_prompt_handler_adds_streams_constants_and_remembers_known_user_nodes():
    keepalive = CacheKeepAlive()
    keepalive.add_stream("a", builder("ct1_", "a").frame_independent_nodes)
    handler = keepalive_handler(keepalive, NODE_CLASSES)
    user = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8}},
        "2": {"class_type": "NotInstalled", "inputs": {}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        "4": {"class_type": "TrickleInput", "inputs": {}},
    }
    body = handler({"prompt": user, "client_id": "c"})
    assert set(body["prompt"]) == {"1", "2", "3", "4", "ct1_5", "ct1_6"} and body["client_id"] == "c"
    assert body["prompt"]["1"] is user["1"]  # the user's own nodes untouched
    # remembered for stream frames: only node types ComfyUI knows (a frame's prompt is not validated),
    # never live nodes (their fingerprint changes every time)
    assert set(keepalive.for_stream("b")) == {"1", "3", "ct1_5", "ct1_6"}
    assert handler({"no_prompt": True}) == {"no_prompt": True}


def test_an_output_node_of_a_stream_is_never_added_to_a_users_prompt():
    keepalive = CacheKeepAlive()
    keepalive.add_stream("a", lambda: {"ct1_9": {"class_type": "PreviewImage", "inputs": {}}})
    body = keepalive_handler(keepalive, NODE_CLASSES)({"prompt": {"1": {"class_type": "Sink", "inputs": {}}}})
    assert set(body["prompt"]) == {"1"}


def test_install_uses_the_servers_hook_when_it_has_one():
    class Server:
        def __init__(self) -> None:
            self.handlers = []

        def add_on_prompt_handler(self, handler) -> None:
            self.handlers.append(handler)

    server = Server()
    install_keepalive_handler(server, CacheKeepAlive(), NODE_CLASSES)
    assert len(server.handlers) == 1
    install_keepalive_handler(object(), CacheKeepAlive(), NODE_CLASSES)  # no hook: skipped, no error


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_executor_time_is_charged_exclusively_and_shares_add_up():
    clock = Clock()
    fairness = ExecutorFairness(clock)
    fairness.add("heavy")
    fairness.add("light")
    fairness.charge("heavy", queued_at=100.0, done_at=101.0)  # ran 1 s
    fairness.charge("light", queued_at=100.5, done_at=101.1)  # queued during heavy: only 0.1 s its own
    clock.now = 101.2
    assert math.isclose(fairness.share("heavy"), 1.0 / 1.1)
    assert math.isclose(fairness.share("light"), 0.1 / 1.1)
    assert math.isclose(fairness.busy_s("light"), 0.1)
    clock.now = 200.0  # out of the window
    assert fairness.share("heavy") == 0.0


async def test_the_wait_is_bounded_by_elapsed_time_even_on_a_busy_event_loop():
    clock = Clock()
    fairness = ExecutorFairness(clock, max_wait_s=0.05)
    for stream in ("heavy", "light"):
        fairness.add(stream)
    fairness.set_ready("light", True)  # the light stream always has a frame ready
    fairness.charge("heavy", 100.0, 101.0)
    clock.now = 101.0
    busy = True

    async def hog_the_loop() -> None:
        while busy:
            time.sleep(0.03)  # noqa: ASYNC251 - the point: each 5 ms sleep of the waiting stream takes 30 ms
            await asyncio.sleep(0)

    hog = asyncio.create_task(hog_the_loop())
    started = time.monotonic()
    try:
        waited = await fairness.turn("heavy")
    finally:
        busy = False
        await hog
    held = time.monotonic() - started
    # counting 10 steps of 5 ms held it 10 x 30 ms; the bound is 0.05 s plus the step in hand
    assert 0.05 <= waited <= held < 0.25


def test_shares_follow_the_sliding_window_as_charges_age_out_and_streams_leave():
    clock = Clock()
    fairness = ExecutorFairness(clock, window_s=10.0)
    for stream in ("a", "b", "c"):
        fairness.add(stream)
    fairness.charge("a", 100.0, 102.0)  # 2 s, ages out first
    fairness.charge("b", 102.0, 103.0)  # 1 s
    fairness.charge("c", 103.0, 104.0)  # 1 s
    clock.now = 104.0
    assert math.isclose(fairness.share("a"), 0.5)
    clock.now = 112.5  # a's charge (done at 102) left the window, the others' did not
    assert fairness.share("a") == 0.0
    assert math.isclose(fairness.share("b"), 0.5) and math.isclose(fairness.share("c"), 0.5)
    fairness.remove("c")
    assert math.isclose(fairness.share("b"), 1.0)
    clock.now = 200.0
    assert fairness.share("b") == 0.0 and fairness.busy_s("b") == 1.0


async def test_a_stream_over_its_share_waits_only_while_another_has_a_frame_ready():
    clock = Clock()
    fairness = ExecutorFairness(clock, max_wait_s=0.05)
    fairness.add("heavy")
    fairness.add("light")
    fairness.charge("heavy", 100.0, 101.0)
    fairness.charge("light", 101.0, 101.01)
    clock.now = 101.02
    assert await fairness.turn("heavy") == 0.0  # no other frame ready (a queued prompt is no reason)
    fairness.set_ready("light", True)
    assert fairness.must_wait("heavy") and not fairness.must_wait("light")
    waited = await fairness.turn("heavy")
    assert 0.05 <= waited < 0.5 and fairness.held_s["heavy"] == waited  # bounded by max_wait_s

    patient = ExecutorFairness(clock, max_wait_s=5.0)
    patient.add("heavy")
    patient.add("light")
    patient.set_ready("light", True)
    patient.charge("heavy", 100.0, 101.0)

    async def light_drains() -> None:
        await asyncio.sleep(0.01)
        patient.set_ready("light", False)

    drain = asyncio.create_task(light_drains())
    assert await patient.turn("heavy") < 1.0  # released as soon as the other stream has nothing ready
    await drain
    patient.set_ready("light", True)
    patient.remove("light")  # a finished stream never makes others wait
    assert not patient.must_wait("heavy")
