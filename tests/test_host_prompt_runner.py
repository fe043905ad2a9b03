"""host.prompt_runner against a fake prompt queue: what a frame's prompt looks like on ComfyUI's queue,
how a prompt's history maps to the outcome a stream acts on, and that forgetting a prompt leaves no
trace in the queue or history (at once, or as soon as a running prompt finishes)."""

from __future__ import annotations

import pytest
from comfy_trickle.host.prompt_runner import FORGET_GIVE_UP_S, FORGET_RETRY_S, ComfyPromptRunner
from comfy_trickle.host.running_prompt import FRAME_SECRET_KEY, running_prompt_secret
from comfy_trickle.host.validation import HostValidation, WorkflowValidator
from comfy_trickle.streams.executor import PromptOutcome, PromptState
from host_fakes import FakeClock, FakeServer

PROMPT = {"1": {"class_type": "Sink", "inputs": {}}}


async def _never_validates(*_args):
    raise AssertionError("submit must not validate again")


@pytest.fixture
def server() -> FakeServer:
    server = FakeServer()
    server.number = 41
    return server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runner(server, clock) -> ComfyPromptRunner:
    validator = WorkflowValidator(HostValidation({}, _never_validates))
    return ComfyPromptRunner(server, validator, clock=clock)


def test_submit_queues_the_six_tuple_post_prompt_queues(server, runner):
    first = runner.submit(PROMPT, ["1"], "stream-a", "frame-secret-1")
    second = runner.submit(PROMPT, ["1"], "stream-a", "frame-secret-2")
    assert first != second
    (number_1, id_1, prompt_1, extra_1, outputs_1, sensitive_1), second_item = server.prompt_queue.queued
    assert (number_1, id_1, prompt_1, outputs_1) == (41, first, PROMPT, ["1"])
    # the frame's secret rides in ComfyUI's sensitive part (never shown by GET /queue or history)...
    assert sensitive_1 == {FRAME_SECRET_KEY: "frame-secret-1"}
    assert "frame-secret-1" not in repr(extra_1)
    # ...and is what a node in that prompt presents while it runs
    server.prompt_queue.running = [server.prompt_queue.queued[0]]
    assert running_prompt_secret(server) == "frame-secret-1"
    server.prompt_queue.running = []
    assert running_prompt_secret(server) is None
    assert extra_1["client_id"] == "stream-a"  # without it ComfyUI drops cached outputs from history
    assert isinstance(extra_1["create_time"], int)
    assert second_item[0] == 42 and server.number == 43  # numbers come from, and advance, the server's


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"status_str": "success", "completed": True, "messages": []}, PromptOutcome(PromptState.SUCCESS)),
        (None, PromptOutcome(PromptState.SUCCESS)),  # ComfyUI without a status: nothing went wrong
        (
            {"status_str": "error", "messages": [
                ["execution_start", {}],
                ["execution_error", {"node_id": "7", "node_type": "Boom", "exception_message": "bad tensor"}],
            ]},
            PromptOutcome(PromptState.ERROR, "7", "Boom", "bad tensor"),
        ),
        (
            {
                "status_str": "error",
                "messages": [["execution_interrupted", {"node_id": "3", "node_type": "Slow"}]],
            },
            PromptOutcome(PromptState.INTERRUPTED, "3", "Slow", "interrupted"),
        ),
        ({"status_str": "error", "messages": []}, PromptOutcome(PromptState.ERROR, message="prompt failed")),
    ],
)
def test_a_finished_prompts_history_maps_to_its_outcome(server, runner, status, expected):
    prompt_id = runner.submit(PROMPT, ["1"], "c", "s")
    server.prompt_queue.start(prompt_id)
    server.prompt_queue.finish(prompt_id, status)
    assert runner.outcome(prompt_id) == expected
    assert runner.outcome(prompt_id).finished


def test_queued_and_running_prompts_are_pending_and_a_vanished_one_is_lost(server, runner):
    prompt_id = runner.submit(PROMPT, ["1"], "c", "s")
    assert runner.outcome(prompt_id).state is PromptState.PENDING
    server.prompt_queue.start(prompt_id)
    assert runner.outcome(prompt_id).state is PromptState.PENDING
    assert not runner.outcome(prompt_id).finished
    server.prompt_queue.running.clear()  # e.g. the user cleared the queue
    assert runner.outcome(prompt_id).state is PromptState.LOST


def test_forget_drops_a_queued_prompt_and_a_finished_prompts_history(server, runner):
    queued = runner.submit(PROMPT, ["1"], "c", "s")
    finished = runner.submit(PROMPT, ["1"], "c", "s")
    server.prompt_queue.start(finished)
    server.prompt_queue.finish(finished, {"status_str": "success", "messages": []})
    runner.forget(queued)
    runner.forget(finished)
    assert server.prompt_queue.queued == [] and server.prompt_queue.history == {}
    assert server.loop.later == []  # nothing left to look for later
    runner.forget(finished)  # idempotent
    assert runner.outcome(finished).state is PromptState.LOST


def test_a_running_prompt_is_purged_from_history_once_it_finishes(server, runner):
    slow, other = runner.submit(PROMPT, ["1"], "c", "s"), runner.submit(PROMPT, ["1"], "c", "s")
    server.prompt_queue.start(slow)
    server.prompt_queue.start(other)
    runner.forget(slow)
    runner.forget(other)
    assert [delay for delay, _ in server.loop.later] == [FORGET_RETRY_S]  # one purge for both
    server.prompt_queue.finish(slow, {"status_str": "success", "messages": []})
    assert server.loop.run_later() == 1
    assert server.prompt_queue.history_deletes == [slow]
    assert len(server.loop.later) == 1  # `other` still runs: looked for again
    server.prompt_queue.finish(other, {"status_str": "success", "messages": []})
    server.loop.run_later()
    assert server.prompt_queue.history == {} and server.loop.later == []


def test_a_prompt_running_past_the_give_up_time_keeps_its_history(server, runner, clock):
    prompt_id = runner.submit(PROMPT, ["1"], "c", "s")
    server.prompt_queue.start(prompt_id)
    runner.forget(prompt_id)
    server.loop.run_later()
    assert len(server.loop.later) == 1
    clock.now += FORGET_GIVE_UP_S + 1
    server.loop.run_later()
    assert server.loop.later == []  # stopped looking
    server.prompt_queue.finish(prompt_id, {"status_str": "success", "messages": []})
    assert prompt_id in server.prompt_queue.history and server.prompt_queue.history_deletes == []
