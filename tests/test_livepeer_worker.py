"""The pack as a Livepeer worker, end to end: a real ComfyUI (its own, with a token, a 2 s status interval
and registration on), our relay in this process, the gateway peer playing go-livepeer's gateway and the
orchestrator peer playing its BYOC registration endpoint (tests/livepeer_peers)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import pytest
from comfy_trickle.devtools.processes import free_port
from comfy_trickle.devtools.stream_harness import ACTIVE_STATES, INVERT, publish_synthetic
from comfy_trickle.trickle.protocol import SEQ_NEXT
from comfy_trickle.trickle.subscriber import TrickleSubscriber
from livepeer_peers.gateway import GatewayPeer
from livepeer_peers.threaded import ThreadedOrchestrator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240), pytest.mark.relay(autocreate=False)]

TOKEN = "worker-token-1"
SECRET = "orch-secret-xyz-123"
SIZE = 128
STATUS_INTERVAL_S = 2.0
SLOW_5S = {
    "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
    "2": {"class_type": "TrickleTestSlow", "inputs": {"image": ["1", 0], "seconds": 5.0}},
    "3": {"class_type": "TrickleOutput", "inputs": {"images": ["2", 0], "stream_id": ""}},
}
FAIL_AT_3 = {
    "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
    "2": {"class_type": "TrickleTestFailAt", "inputs": {"image": ["1", 0], "tag": "lp-fail", "fail_at": 3}},
    "3": {"class_type": "TrickleOutput", "inputs": {"images": ["2", 0], "stream_id": ""}},
}
CAPTION = {
    **INVERT,
    "4": {"class_type": "PrimitiveString", "inputs": {"value": "a caption"}},
    "5": {"class_type": "TrickleTextOutput", "inputs": {"text": ["4", 0], "stream_id": ""}},
}


def params(workflow: dict) -> dict:
    return {"width": SIZE, "height": SIZE, "prompt": workflow, "max_backlog_s": 60.0}


@pytest.fixture(scope="module")
def orchestrator():
    peer = ThreadedOrchestrator(SECRET, free_port())
    peer.start()
    yield peer
    peer.close()


@pytest.fixture(scope="module")
def worker(comfyui_factory, orchestrator):
    return comfyui_factory(env={
        "COMFY_TRICKLE_TOKEN": TOKEN,
        "COMFY_TRICKLE_STATUS_INTERVAL_S": str(STATUS_INTERVAL_S),
        "COMFY_TRICKLE_MAX_STREAMS": "3",
        "ORCH_URL": orchestrator.peer.url,
        "ORCH_SECRET": SECRET,
        "CAPABILITY_NAME": "comfyui-test",
        "ORCH_REREGISTER_S": "2",
    })


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        yield session


@pytest.fixture
async def gateway(relay, worker):
    peer = GatewayPeer(relay, worker.base_url, token=TOKEN, keepalive_s=2.0)
    yield peer
    await peer.close()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        async with session.get(f"{worker.base_url}/streams") as response:
            streams = (await response.json())["streams"]
        for stream_id, status in streams.items():
            if status["state"] in ACTIVE_STATES:
                await session.post(f"{worker.base_url}/stream/{stream_id}/stop")


async def get_json(http, url: str) -> tuple[int, dict]:
    async with http.get(url) as response:
        return response.status, await response.json(content_type=None)


async def wait_health(http, worker, wanted: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        _, body = await get_json(http, f"{worker.base_url}/health")
        if body["status"] == wanted or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.2)


async def test_a_gateway_stream_gets_traces_status_events_and_health_follows(gateway, worker, http):
    _, idle = await get_json(http, f"{worker.base_url}/health")
    assert idle["status"] == "IDLE"
    status, body, stream = await gateway.start("lp-basic", params(INVERT))
    assert status == 200, body
    publisher = asyncio.create_task(publish_synthetic(stream.urls["subscribe_url"], 90, fps=15, end=False))
    await stream.wait_for(lambda e: e.type == "runner_send_first_processed_segment", 60)
    traces = [e.type for e in stream.events if e.envelope["queue_event_type"] == "stream_trace"]
    assert traces == ["runner_receive_stream_request", "runner_receive_first_ingest_segment",
                      "runner_send_first_processed_segment"]
    assert (await wait_health(http, worker, "OK"))["status"] == "OK"
    await stream.wait_for(lambda e: e.type == "status" and e.event["inference_status"]["fps"] > 0, 30)
    statuses = stream.of_type("status")
    first, last = statuses[0].event, statuses[-1].event
    assert statuses[0].envelope["queue_event_type"] == "ai_stream_events"
    assert first["pipeline"] == "comfyui" and first["inference_status"]["last_params"]["width"] == SIZE
    assert first["inference_status"]["last_params_hash"] == last["inference_status"]["last_params_hash"]
    assert last["inference_status"]["last_params"] is None  # sent once, as ai-runner does
    assert last["state"] in ("ONLINE", "DEGRADED_INPUT", "DEGRADED_INFERENCE")  # 15 fps in is "degraded"
    assert last["input_status"]["fps"] > 0 and last["last_status_timestamp"] <= last["timestamp"]
    await publisher
    async with http.post(f"{worker.base_url}/stream/stop", headers={"X-Stream-Id": "lp-basic"}) as response:
        assert response.status == 200
    await stream.wait_for(lambda e: e.type == "status" and e.event["state"] == "OFFLINE", 15)
    assert (await wait_health(http, worker, "IDLE"))["status"] == "IDLE"
    assert stream.silence_failure is None


async def test_status_events_keep_their_rhythm_while_the_executor_is_busy_5_s(gateway, worker):
    status, body, stream = await gateway.start("lp-busy", params(SLOW_5S))
    assert status == 200, body
    publisher = asyncio.create_task(publish_synthetic(stream.urls["subscribe_url"], 60, fps=10, end=False))
    # a frame holds the executor 5 s: wait for 3 processed frames (15 s of a busy executor)
    await stream.wait_for(lambda e: e.type == "runner_send_first_processed_segment", 60)
    await asyncio.sleep(12)
    gaps = stream.status_gaps()
    histogram = {}
    for gap in gaps:
        histogram[f"{int(gap * 2) / 2:.1f}s"] = histogram.get(f"{int(gap * 2) / 2:.1f}s", 0) + 1
    logging.getLogger(__name__).warning(
        "status gaps under a 5 s busy executor (interval %s s): %s, max %.2f s",
        STATUS_INTERVAL_S, json.dumps(dict(sorted(histogram.items()))), max(gaps),
    )
    assert len(gaps) >= 5
    # a status loop waiting on the executor would show gaps of 5 s and more
    assert max(gaps) < 5.0, gaps
    publisher.cancel()


async def test_a_node_failure_sends_an_error_event_and_health_reads_error(gateway, worker, http):
    status, body, stream = await gateway.start("lp-fail", params(FAIL_AT_3))
    assert status == 200, body
    publisher = asyncio.create_task(publish_synthetic(stream.urls["subscribe_url"], 60, fps=15, end=False))
    error = await stream.wait_for(lambda e: e.type == "error", 60)
    assert error.event["kind"] == "node"
    assert "TrickleTestFailAt lp-fail fails on run 3" in error.event["message"]
    final = await stream.wait_for(lambda e: e.type == "status" and e.event["state"] == "ERROR", 15)
    assert "fails on run 3" in final.event["inference_status"]["last_error"]
    health = await wait_health(http, worker, "ERROR", 10)
    assert health["status"] == "ERROR" and "lp-fail" in health["streams_in_error"]
    publisher.cancel()


async def test_status_events_come_back_after_the_events_channel_was_down(gateway, worker, relay):
    status, body, stream = await gateway.start("lp-down", params(INVERT))
    assert status == 200, body
    publisher = asyncio.create_task(publish_synthetic(stream.urls["subscribe_url"], 150, fps=15, end=False))
    await stream.wait_for(lambda e: e.type == "status", 30)
    relay.relay.delete_channel("lp-down-events")
    await asyncio.sleep(3 * STATUS_INTERVAL_S)
    relay.relay.create_channel("lp-down-events", "application/json")
    # the worker goes on publishing: fresh status events arrive on the re-created channel
    events = await asyncio.wait_for(read_events(stream.urls["events_url"], count=2), 30)
    statuses = [e["event"] for e in events if e["event"]["type"] == "status"]
    assert statuses, events
    assert statuses[-1]["state"] != "ERROR" and statuses[-1]["input_status"]["fps"] > 0
    publisher.cancel()


async def read_events(url: str, count: int = 1) -> list[dict]:
    subscriber = TrickleSubscriber(url, start_seq=SEQ_NEXT)
    found: list[dict] = []
    try:
        while len(found) < count:
            segment = await subscriber.next_segment()
            if segment is None:
                break
            raw = await segment.read_all()
            if raw.strip():
                found.append(json.loads(raw))
    finally:
        await subscriber.close()
    return found


async def test_byoc_streams_run_side_by_side_by_id_with_text_on_the_data_channel(gateway, worker, http):
    started = []
    for mid in ("byoc-a", "byoc-b"):
        byoc_params = {"width": SIZE, "height": SIZE, "prompts": [CAPTION], "max_backlog_s": 60.0}
        status, body, stream = await gateway.start(mid, byoc_params, byoc=True, data=True)
        assert status == 200, body
        started.append(stream)
    publishers = [asyncio.create_task(publish_synthetic(s.urls["subscribe_url"], 60, fps=15, end=False))
                  for s in started]
    batches = await asyncio.wait_for(read_data(started[0].urls["data_url"]), 60)
    assert batches and all(item == "a caption" for batch in batches for item in batch)
    status, one = await get_json_headers(http, f"{worker.base_url}/stream/status", {"X-Stream-Id": "byoc-b"})
    assert status == 200 and one["request_id"] == "byoc-b" and one["state"] == "running"
    async with http.post(f"{worker.base_url}/stream/stop", headers={"X-Stream-Id": "byoc-a"}) as response:
        assert response.status == 200 and (await response.json())["state"] == "stopped"
    _, other = await get_json_headers(http, f"{worker.base_url}/stream/status", {"X-Stream-Id": "byoc-b"})
    assert other["state"] == "running"
    async with http.post(f"{worker.base_url}/stream/stop", headers={"X-Stream-Id": "nope"}) as response:
        assert response.status == 404 and "nope" in (await response.json())["error"]
    async with http.post(f"{worker.base_url}/stream/stop") as response:
        assert response.status == 400 and "X-Stream-Id" in (await response.json())["error"]
    for task in publishers:
        task.cancel()


async def get_json_headers(http, url: str, headers: dict) -> tuple[int, dict]:
    async with http.get(url, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def read_data(url: str, batches: int = 2) -> list[list[str]]:
    subscriber = TrickleSubscriber(url, start_seq=SEQ_NEXT)
    found: list[list[str]] = []
    try:
        while len(found) < batches:
            segment = await subscriber.next_segment()
            if segment is None:
                break
            raw = await segment.read_all()
            assert raw.endswith(b"\n"), raw
            items = json.loads(raw)
            if items:
                found.append(items)
    finally:
        await subscriber.close()
    return found


async def test_identity_hardware_and_metrics_behind_the_token(gateway, worker, http):
    status, version = await get_json(http, f"{worker.base_url}/version")
    assert status == 200
    assert version == {"pipeline": "comfyui", "model_id": "comfyui-test", "version": "0.1.0"}
    status, hardware = await get_json(http, f"{worker.base_url}/api/hardware/info")
    assert status == 200 and hardware["pipeline"] == "comfyui" and isinstance(hardware["gpu_info"], dict)
    async with aiohttp.ClientSession() as anonymous:
        for path in ("/metrics", "/health", "/stream/status"):
            async with anonymous.get(worker.base_url + path) as response:
                assert response.status == 401, path
    status, body, stream = await gateway.start("lp-metrics", params(INVERT))
    assert status == 200, body
    publisher = asyncio.create_task(publish_synthetic(stream.urls["subscribe_url"], 60, fps=15, end=False))
    await stream.wait_for(lambda e: e.type == "runner_send_first_processed_segment", 60)
    await asyncio.sleep(1.0)
    async with http.get(f"{worker.base_url}/metrics") as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert 'comfy_trickle_stream_state{state="running",stream="lp-metrics"} 1.0' in text
    assert 'comfy_trickle_stream_latency_seconds_count{stream="lp-metrics"}' in text
    assert "comfy_trickle_streams_running 1.0" in text and "comfy_trickle_free_slots 2.0" in text
    assert 'comfy_trickle_stream_fps_in{stream="lp-metrics"}' in text
    publisher.cancel()


async def test_registration_reports_free_slots_and_survives_an_orchestrator_restart(
        gateway, worker, orchestrator):
    peer = orchestrator.peer
    await wait_registration(peer, lambda r: r.body["capacity"] == 3, 30)
    body = peer.registrations[-1].body
    assert set(body) == {"name", "description", "url", "capacity", "price_per_unit", "price_scaling",
                         "currency", "token"}
    assert body["name"] == "comfyui-test" and body["url"] == worker.base_url and body["token"] == TOKEN
    assert peer.registrations[-1].authorization == SECRET
    status, answer, stream = await gateway.start("lp-reg", params(INVERT))
    assert status == 200, answer
    await wait_registration(peer, lambda r: r.body["capacity"] == 2, 30)
    orchestrator.stop()  # the orchestrator crashes: forgets the capability
    await asyncio.sleep(3)
    before_restart = len(peer.registrations)
    orchestrator.start()
    await wait_registration(peer, lambda r: r.body["capacity"] == 2, 60, since=before_restart)
    assert peer.capabilities["comfyui-test"]["capacity"] == 2
    await gateway._http.post(f"{worker.base_url}/stream/stop", headers={"X-Stream-Id": "lp-reg",
                                                                        "Authorization": f"Bearer {TOKEN}"})
    await wait_registration(peer, lambda r: r.body["capacity"] == 3, 30, since=before_restart)
    assert SECRET not in worker.log_text()


async def wait_registration(peer, predicate, timeout: float, since: int = 0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(predicate(r) for r in peer.registrations[since:]) and peer.capabilities:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no such registration in {[r.body['capacity'] for r in peer.registrations]}")


async def test_byoc_params_updates_show_in_status_events_and_rejections_as_error_events(
        gateway, worker, http):
    status, body, stream = await gateway.start("lp-params", params(INVERT), byoc=True)
    assert status == 200, body
    publisher = asyncio.create_task(publish_synthetic(stream.urls["subscribe_url"], 150, fps=15, end=False))
    first = await stream.wait_for(lambda e: e.type == "status", 30)
    old_hash = first.event["inference_status"]["last_params_hash"]
    passthrough = {"1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
                   "2": {"class_type": "TrickleOutput", "inputs": {"images": ["1", 0], "stream_id": ""}}}
    headers = {"X-Stream-Id": "lp-params"}
    async with http.post(f"{worker.base_url}/stream/params", json={"prompt": passthrough},
                         headers=headers) as response:
        assert response.status == 200, await response.text()
    def new_hash(event) -> bool:
        return event.type == "status" and event.event["inference_status"]["last_params_hash"] not in (
            None, old_hash)

    updated = await stream.wait_for(new_hash, 30)
    assert updated.event["inference_status"]["last_params"] == {"prompt": passthrough}
    bad = {**passthrough, "9": {"class_type": "NoSuchNode", "inputs": {}}}
    url = f"{worker.base_url}/stream/params"
    async with http.post(url, json={"prompt": bad}, headers=headers) as response:
        assert response.status == 400
    error = await stream.wait_for(lambda e: e.type == "error" and e.event["kind"] == "params", 15)
    assert error.event["message"].startswith("update rejected:")
    # the same through the control channel: the gateway's next params snapshot is invalid
    stream.params = {"prompt": bad}
    rejected = await stream.wait_for(
        lambda e: e.type == "error" and e.event["message"].startswith("control message rejected:"), 30)
    assert "NoSuchNode" in rejected.event["message"]
    publisher.cancel()
