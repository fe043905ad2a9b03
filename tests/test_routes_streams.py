"""The stream routes over real HTTP (aiohttp test server) with a small in-memory registry.

Unit level: checks the routes' own logic (auth, size, parsing, allowlist, error mapping, bodies). The
same statuses against the real ComfyUI and the real registry are in test_routes_comfyui.py.
"""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from comfy_trickle.routes.settings import TrickleSettings
from comfy_trickle.routes.streams import StreamRoutes
from comfy_trickle.streams.config import StreamConfig
from comfy_trickle.streams.errors import (
    StreamExists,
    StreamLimitReached,
    StreamNotFound,
    WorkflowInvalid,
    node_error,
)
from comfy_trickle.streams.limits import StreamLimits

PASSTHROUGH = {
    "1": {"inputs": {"images": ["2", 0]}, "class_type": "SaveTensor"},
    "2": {"inputs": {}, "class_type": "LoadTensor"},
}


class MemoryRegistry:
    """Keeps configs; raises the engine's typed errors the way the real registry does."""

    def __init__(self, max_streams: int = 2) -> None:
        self.max_streams = max_streams
        self.configs: dict[str, StreamConfig] = {}
        self.started: list[str] = []

    def _status(self, stream_id: str, state: str) -> dict:
        return {"request_id": stream_id, "state": state, "config": self.configs[stream_id].to_json()}

    async def start(self, config: StreamConfig) -> dict:
        if config.stream_id in self.configs:
            raise StreamExists(f"Stream {config.stream_id} already exists")
        if len(self.configs) >= self.max_streams:
            raise StreamLimitReached(f"Stream limit reached ({self.max_streams})")
        for node_id, node in config.workflow.items():
            if node["class_type"] == "Broken":
                raise WorkflowInvalid(
                    "Prompt outputs failed validation",
                    node_error(node_id, "Broken", "value_not_in_list", "Value not in list", "x", "mode"),
                )
        self.configs[config.stream_id] = config
        self.started.append(config.stream_id)
        return self._status(config.stream_id, "starting")

    async def stop(self, stream_id: str) -> dict:
        if stream_id not in self.configs:
            raise StreamNotFound(f"Stream {stream_id} not found")
        status = self._status(stream_id, "stopped")
        del self.configs[stream_id]
        return status

    def status(self, stream_id: str) -> dict:
        if stream_id not in self.configs:
            raise StreamNotFound(f"Stream {stream_id} not found")
        return self._status(stream_id, "running")

    def statuses(self) -> dict:
        return {stream_id: self._status(stream_id, "running") for stream_id in self.configs}


def start_body(stream_id: str = "s1", **overrides) -> dict:
    body = {
        "subscribe_url": "http://127.0.0.1:9/in",
        "publish_url": "http://127.0.0.1:9/out",
        "gateway_request_id": stream_id,
        "params": {"width": 512, "height": 512, "prompt": json.dumps(PASSTHROUGH)},
    }
    body.update(overrides)
    return body


@pytest.fixture
def registry():
    return MemoryRegistry()


async def make_client(registry, **settings) -> TestClient:
    routes = StreamRoutes(registry, TrickleSettings(**settings))
    client = TestClient(TestServer(routes.get_app()))
    await client.start_server()
    return client


@pytest.fixture
async def client(registry):
    client = await make_client(registry)
    yield client
    await client.close()


async def test_start_status_list_stop_round_trip(client, registry):
    resp = await client.post("/stream/start", json=start_body("a"))
    assert resp.status == 200
    answer = await resp.json()
    assert answer["status"] == "success"
    assert answer["request_id"] == "a"
    assert answer["state"] == "starting"
    assert answer["config"]["subscribe_url"] == "http://127.0.0.1:9/in"
    assert answer["config"]["width"] == 512

    resp = await client.post("/live-video-to-video", json=start_body("b"))
    assert resp.status == 200

    resp = await client.get("/stream/a/status")
    assert resp.status == 200
    assert (await resp.json())["state"] == "running"

    listing = await (await client.get("/streams")).json()
    assert listing["count"] == 2 and set(listing["streams"]) == {"a", "b"}

    resp = await client.post("/stream/a/stop")
    assert resp.status == 200
    stopped = await resp.json()
    assert stopped["status"] == "success" and stopped["state"] == "stopped" and stopped["request_id"] == "a"
    assert (await (await client.get("/streams")).json())["count"] == 1


async def test_error_statuses_from_the_registry(client, registry):
    assert (await client.post("/stream/start", json=start_body("a"))).status == 200
    resp = await client.post("/stream/start", json=start_body("a"))
    assert resp.status == 409
    assert await resp.json() == {"error": "Stream a already exists"}

    assert (await client.post("/stream/start", json=start_body("b"))).status == 200
    resp = await client.post("/stream/start", json=start_body("c"))
    assert resp.status == 429
    assert await resp.json() == {"error": "Stream limit reached (2)"}

    for method, path in (("GET", "/stream/nope/status"), ("POST", "/stream/nope/stop")):
        resp = await client.request(method, path)
        assert resp.status == 404
        assert await resp.json() == {"error": "Stream nope not found"}


async def test_workflow_errors_carry_node_errors(client, registry):
    workflow = {"1": {"class_type": "Broken", "inputs": {"mode": "x"}}}
    resp = await client.post("/stream/start", json=start_body(params={"prompt": workflow}))
    assert resp.status == 400
    answer = await resp.json()
    assert answer["error"] == "Prompt outputs failed validation"
    error = answer["node_errors"]["1"]["errors"][0]
    assert answer["node_errors"]["1"]["class_type"] == "Broken"
    assert error["extra_info"]["input_name"] == "mode"


async def test_bad_bodies_answer_400_and_start_nothing(client, registry):
    json_header = {"Content-Type": "application/json"}
    resp = await client.post("/stream/start", data=b'{"subscribe_url": ', headers=json_header)
    assert resp.status == 400
    assert (await resp.json())["error"].startswith("Request body is not valid JSON: ")

    resp = await client.post("/stream/start", data=b"")
    assert resp.status == 400
    assert (await resp.json())["error"] == "Request body is empty; expected a JSON object"

    missing = start_body()
    del missing["publish_url"]
    resp = await client.post("/stream/start", json=missing)
    assert resp.status == 400
    assert await resp.json() == {"error": "Missing required field: publish_url", "field": "publish_url"}
    assert registry.started == []


async def test_foreign_trickle_host_is_403(client, registry):
    resp = await client.post("/stream/start", json=start_body(publish_url="http://10.1.2.3:8935/out"))
    assert resp.status == 403
    answer = await resp.json()
    assert answer["field"] == "publish_url" and answer["host"] == "10.1.2.3"
    assert registry.started == []


async def test_allowed_hosts_setting_admits_a_host(registry):
    client = await make_client(registry, allowed_hosts=("10.1.2.3:8935",))
    try:
        resp = await client.post("/stream/start", json=start_body(publish_url="http://10.1.2.3:8935/out"))
        assert resp.status == 200
    finally:
        await client.close()


async def test_body_size_limit_is_413_with_and_without_content_length(registry):
    client = await make_client(registry, limits=StreamLimits(max_request_bytes=1000))
    try:
        big = start_body(padding="x" * 2000)
        resp = await client.post("/stream/start", json=big)
        assert resp.status == 413
        assert (await resp.json())["max_bytes"] == 1000

        async def chunks():
            data = json.dumps(big).encode()
            for i in range(0, len(data), 300):
                yield data[i : i + 300]

        resp = await client.post("/stream/start", data=chunks())  # chunked: no Content-Length
        assert resp.status == 413
        assert registry.started == []

        assert (await client.post("/stream/start", json=start_body())).status == 200
    finally:
        await client.close()


async def test_bearer_token(registry):
    client = await make_client(registry, token="s3cret")
    try:
        for method, path in (
            ("POST", "/stream/start"),
            ("GET", "/streams"),
            ("GET", "/stream/x/status"),
            ("POST", "/stream/x/stop"),
        ):
            resp = await client.request(method, path, json=start_body())
            assert resp.status == 401, path
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert await resp.json() == {"error": "Missing bearer token"}

        resp = await client.get("/streams", headers={"Authorization": "Bearer wrong"})
        assert resp.status == 401
        assert await resp.json() == {"error": "Invalid bearer token"}

        good = {"Authorization": "Bearer s3cret"}
        assert (await client.post("/stream/start", json=start_body(), headers=good)).status == 200
        assert (await client.get("/streams", headers=good)).status == 200
    finally:
        await client.close()


async def test_unexpected_registry_failure_is_a_logged_500(registry, caplog):
    async def broken_start(config):
        raise RuntimeError("engine bug")

    registry.start = broken_start
    client = await make_client(registry)
    try:
        resp = await client.post("/stream/start", json=start_body())
        assert resp.status == 500
        assert await resp.json() == {"error": "Internal error: RuntimeError: engine bug"}
        assert "engine bug" in caplog.text
    finally:
        await client.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b"null",
        b'"text"',
        b"\xff\xfe{}",
        b'{"gateway_request_id": {"a": 1}, "subscribe_url": "http://127.0.0.1/a", "publish_url": "x"}',
        b'{"gateway_request_id": "a", "subscribe_url": "http://127.0.0.1/a", "publish_url": "http://127.0.0.1/b",'
        b' "params": {"width": NaN, "prompt": {}}}',
        b'{"gateway_request_id": "a", "subscribe_url": "http://127.0.0.1/a", "publish_url": "http://127.0.0.1/b",'
        b' "params": {"width": 1e999, "prompt": {"1": {"class_type": "X", "inputs": {}}}}}',
        b'{"gateway_request_id": "a", "subscribe_url": "http://[::1/a", "publish_url": "http://127.0.0.1/b"}',
        b'{"gateway_request_id": "a", "subscribe_url": "http://127.0.0.1/a", "publish_url": "http://127.0.0.1/b",'
        b' "params": {"prompt": {"1": [1, 2]}}}',
        b'{"gateway_request_id": "a", "subscribe_url": "http://127.0.0.1/a", "publish_url": "http://127.0.0.1/b",'
        b' "params": [], "control_url": 5}',
        # Deep nesting exhausts the JSON decoder's recursion (was a 500 RecursionError).
        b"[" * 100_000 + b"]" * 100_000,
        # ... and so does a deeply nested prompt sent as a JSON string.
        b'{"gateway_request_id": "a", "subscribe_url": "http://127.0.0.1/a", "publish_url": "http://127.0.0.1/b",'
        b' "params": {"prompt": "' + b"[" * 100_000 + b"]" * 100_000 + b'"}}',
    ],
)
async def test_malformed_bodies_are_400_never_500(client, registry, raw):
    resp = await client.post("/stream/start", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 400, await resp.text()
    assert isinstance((await resp.json())["error"], str)
    assert registry.started == []
