"""Pure logic of the Livepeer worker: ai-runner's state machine and status shape, the events channel's
bounded retries, BYOC body mapping, registration settings (the secret never printed), metrics text."""

from __future__ import annotations

import asyncio
import json

import pytest
from comfy_trickle.livepeer import pipeline_status as ps
from comfy_trickle.livepeer.byoc import adapt_start_body, stream_id_of
from comfy_trickle.livepeer.events import StreamEvents
from comfy_trickle.livepeer.registration import RegistrationSettings

T0 = 1_000_000.0
EVENTS_URL = "http://127.0.0.1:1/x-events"


async def until(condition, timeout: float = 30.0) -> None:
    """Wait (bounded) until ``condition()`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.05)


def running_status(fps_in: float = 30, fps_out: float = 30) -> ps.StreamPipelineStatus:
    """A stream that ran 20 s at the given rates (sampled every 0.5 s)."""
    status = ps.StreamPipelineStatus("comfyui", start_time=T0)
    status.params_updated({"prompt": {}}, T0)
    frames_in = frames_out = 0
    for step in range(41):
        now = T0 + step * 0.5
        status.observe("running", {"frames_in": int(frames_in), "frames_out": int(frames_out)}, now)
        frames_in += fps_in * 0.5
        frames_out += fps_out * 0.5
    return status


def test_state_machine_follows_ai_runner_thresholds():
    assert ps.StreamPipelineStatus("comfyui", start_time=T0).observe("starting", {}, T0 + 1) == ps.LOADING
    assert ps.StreamPipelineStatus("comfyui", start_time=T0).observe("starting", {}, T0 + 183) == ps.ERROR
    assert running_status().state == ps.ONLINE
    assert running_status(fps_in=10, fps_out=10).state == ps.DEGRADED_INPUT  # input fps < 15
    assert running_status(fps_in=30, fps_out=8).state == ps.DEGRADED_INFERENCE  # out < min(10, 0.8 x in)
    status = running_status()
    counters = {"frames_in": 600, "frames_out": 600}
    status.error_reported("boom", T0 + 20)
    assert status.observe("running", counters, T0 + 20.5) == ps.DEGRADED_INFERENCE  # error in the last 15 s
    stalled = running_status()
    frames_in = 600
    for step in range(1, 14):  # input goes on, output stops for 6.5 s
        frames_in += 15
        state = stalled.observe("running", {"frames_in": frames_in, "frames_out": 600}, T0 + 20 + step * 0.5)
    assert state == ps.ERROR
    # a stall is not forever here (ai-runner restarts its process instead): output resumes, state recovers
    assert stalled.observe("running", {"frames_in": frames_in + 15, "frames_out": 700}, T0 + 27.5) != ps.ERROR
    assert stalled.observe("stopped", {"frames_in": frames_in, "frames_out": 700}, T0 + 28) == ps.OFFLINE
    assert stalled.observe("error", {}, T0 + 29) == ps.ERROR


def test_warm_up_placeholders_are_not_inference_output():
    """A workflow warming up sends the input marked "updating" (frames_covered): the status events say no
    inference output came (ai-runner's last_output_time and fps), not ONLINE at the input's rate."""
    status = ps.StreamPipelineStatus("comfyui", start_time=T0)
    status.params_updated({"prompt": {}}, T0)
    for step in range(1, 61):  # 30 s of 30 fps input, every frame a placeholder
        frames = step * 15
        state = status.observe(
            "running", {"frames_in": frames, "frames_out": frames, "frames_covered": frames}, T0 + step * 0.5
        )
    event = status.to_event(None)
    assert event["inference_status"]["fps"] == 0 and event["inference_status"]["last_output_time"] is None
    assert event["input_status"]["fps"] == 30 and state != ps.ONLINE, (state, event)


def test_status_event_has_ai_runner_shape_and_sends_params_once():
    status = running_status()
    first = status.to_event(None)
    assert set(first) == {"type", "pipeline", "start_time", "state", "last_state_update_time", "input_status",
                          "inference_status", "last_status_timestamp"}
    assert set(first["inference_status"]) == {
        "last_output_time", "fps", "last_params_update_time", "last_params", "last_params_hash",
        "last_error_time", "last_error", "last_restart_time", "last_restart_logs", "restart_count"}
    assert first["start_time"] == int(T0 * 1000) and first["input_status"]["fps"] == pytest.approx(30, abs=1)
    assert first["inference_status"]["last_params"] == {"prompt": {}}
    assert first["inference_status"]["last_params_hash"] == ps.params_hash({"prompt": {}})
    second = status.to_event(T0 + 10)
    assert second["inference_status"]["last_params"] is None
    assert second["last_status_timestamp"] == int((T0 + 10) * 1000)


class FlakySink:
    """Fails ``failures`` sends, then records; the writer's stand-in for a channel that was down."""

    sent: list[tuple[dict, str]] = []
    failures = 0
    created = 0

    def __init__(self, url: str) -> None:
        FlakySink.created += 1

    async def send(self, event: dict, queue_event_type: str = "ai_stream_events") -> int:
        if FlakySink.failures:
            FlakySink.failures -= 1
            raise ConnectionError("channel down")
        FlakySink.sent.append((event, queue_event_type))
        return len(FlakySink.sent)

    async def close(self, delete_channel: bool = False) -> None:
        pass


async def test_events_retry_with_a_fresh_publisher_and_keep_order():
    FlakySink.sent, FlakySink.failures, FlakySink.created = [], 3, 0
    events = StreamEvents(EVENTS_URL, running_status(), interval_s=60, sink_factory=FlakySink)
    events.trace("runner_receive_stream_request")
    events.error("params", "rejected update: width must be a multiple of 64")
    events.start()
    await until(lambda: len(FlakySink.sent) >= 3)  # after three failures (0.25 + 0.5 + 1 s of backoff)
    await events.close()
    types = [e["type"] for e, _ in FlakySink.sent]
    assert types[:3] == ["runner_receive_stream_request", "error", "status"] and types[-1] == "status"
    assert [q for _, q in FlakySink.sent[:2]] == ["stream_trace", "ai_stream_events"]
    assert FlakySink.sent[1][0]["kind"] == "params" and FlakySink.created == 4
    assert all(isinstance(e["timestamp"], int) for e, _ in FlakySink.sent)
    json.dumps([e for e, _ in FlakySink.sent])


async def test_an_event_that_never_gets_through_is_dropped_after_bounded_attempts():
    FlakySink.sent, FlakySink.failures, FlakySink.created = [], 1000, 0
    events = StreamEvents(EVENTS_URL, running_status(), interval_s=60, sink_factory=FlakySink)
    events.trace("runner_receive_stream_request")
    events.start()
    await until(lambda: events.dropped >= 1)  # 5 attempts, then the next event
    assert FlakySink.sent == [] and FlakySink.created >= 5  # a fresh publisher for every attempt
    await events.close()


def test_byoc_bodies_are_mapped_onto_ours():
    workflow = {"1": {"class_type": "LoadTensor", "inputs": {}}}
    body = {"control_url": "c", "params": {"prompts": [workflow], "width": 512}}
    mapped = adapt_start_body({"X-Stream-Id": "s-1"}, body)
    assert mapped["gateway_request_id"] == "s-1"
    assert mapped["params"] == {"prompt": workflow, "width": 512}
    assert body["params"]["prompts"] == [workflow]  # the caller's body is not changed
    ours = {"gateway_request_id": "mine", "params": {"prompt": workflow}}
    assert adapt_start_body({}, ours) == ours
    assert stream_id_of({"X-Stream-Id": " a "}) == "a"
    assert stream_id_of({}, {"gateway_request_id": "b"}) == "b"
    assert stream_id_of({}, None) == ""


def test_registration_settings_come_from_env_and_never_print_the_secret():
    assert RegistrationSettings.from_env({"ORCH_URL": "https://127.0.0.1:8935"}) is None
    settings = RegistrationSettings.from_env(
        {"ORCH_URL": "https://127.0.0.1:8935/", "ORCH_SECRET": "s3cret", "CAPABILITY_PRICE_PER_UNIT": "7"},
        token="tok",
    )
    assert settings is not None and "s3cret" not in repr(settings) and "s3cret" not in str(settings)
    body = settings.body(3, "http://127.0.0.1:8188")
    assert body == {"name": "comfyui", "description": "ComfyUI live video (comfy-trickle)",
                    "url": "http://127.0.0.1:8188", "capacity": 3, "price_per_unit": 7, "price_scaling": 1,
                    "currency": "wei", "token": "tok"}
    assert settings.orch_url == "https://127.0.0.1:8935"


class FakeRegistry:
    """The registry surface the worker reads: status snapshots by id."""

    max_streams = 2

    def __init__(self) -> None:
        self.snapshots: dict[str, dict] = {}

    def status(self, stream_id: str) -> dict:
        return self.snapshots[stream_id]

    def statuses(self) -> dict[str, dict]:
        return dict(self.snapshots)

    def brief(self, stream_id: str) -> dict:
        return self.snapshots[stream_id]

    def active_count(self) -> int:
        active = ("starting", "waiting", "running", "stopping")
        return sum(1 for snapshot in self.snapshots.values() if snapshot["state"] in active)

    def session(self, stream_id: str):
        raise AttributeError("no sessions in this fake")


class FakeConfig:
    def __init__(self, stream_id: str) -> None:
        self.stream_id, self.workflow, self.width, self.height = stream_id, {}, 128, 128
        self.params, self.events_url, self.data_url = {}, "", ""


async def test_health_is_loading_idle_ok_then_error_when_the_executor_is_stuck():
    from comfy_trickle.livepeer.worker import LivepeerWorker

    registry = FakeRegistry()
    worker = LivepeerWorker(registry, stuck_after_s=60)
    assert worker.health()["status"] == "LOADING"
    worker.start()
    assert worker.health() == {"status": "IDLE", "active_streams": 0}
    registry.snapshots["s"] = {"state": "running", "counters": {"frames_in": 0, "frames_out": 0}}
    worker.stream_started(FakeConfig("s"), T0)
    assert worker.free_slots() == 1
    for step in range(130):  # input every 0.5 s for 65 s, one output at the start, then none
        now = T0 + step * 0.5
        registry.snapshots["s"]["counters"] = {"frames_in": step + 1, "frames_out": 1}
        worker._streams["s"].status.observe("running", registry.snapshots["s"]["counters"], now)
        if step == 10:
            assert worker.health(now)["status"] == "OK"
    health = worker.health(T0 + 64.5)
    assert health["status"] == "ERROR" and health["stuck_streams"] == ["s"]
    await worker.close()
