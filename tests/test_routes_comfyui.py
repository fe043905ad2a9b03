"""The stream REST API on a real ComfyUI: every error status with its body, and the /api mirrors.

Uses the session's shared ComfyUI (``comfyui``) and at most one extra instance configured with a token,
a stream limit of 1 and a small body limit (``guarded_comfyui``).
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from comfy_trickle.devtools.stream_harness import ACTIVE_STATES

PASSTHROUGH = {
    "1": {"inputs": {"images": ["2", 0]}, "class_type": "SaveTensor"},
    "2": {"inputs": {}, "class_type": "LoadTensor"},
}
INVERT = {
    "1": {"class_type": "TrickleInput", "inputs": {}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "TrickleOutput", "inputs": {"images": ["2", 0]}},
}
TOKEN = "routes-test-token"
GUARDED_ENV = {
    "COMFY_TRICKLE_TOKEN": TOKEN,
    "COMFY_TRICKLE_MAX_STREAMS": "1",
    "COMFY_TRICKLE_MAX_REQUEST_BYTES": "4096",
}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def guarded_comfyui(comfyui_factory):
    """The one extra ComfyUI of these tests: token, 1 stream at most, 4 KiB bodies."""
    return comfyui_factory(env=GUARDED_ENV)


def relay_channel(server, name: str) -> str:
    """A channel on ComfyUI's own dev relay, created now so a stream can subscribe to it."""
    url = f"{server.base_url}/trickle/relay/{name}"
    result = server.request("POST", f"/trickle/relay/{name}")
    assert result.status == 200, (result.status, result.body)
    return url


def start_body(server, stream_id: str | None = None, workflow=None, **params) -> dict:
    stream_id = stream_id or f"t-{uuid.uuid4().hex[:8]}"
    return {
        "subscribe_url": f"{server.base_url}/trickle/relay/{stream_id}-in",
        "publish_url": f"{server.base_url}/trickle/relay/{stream_id}-out",
        "gateway_request_id": stream_id,
        "params": {"width": 256, "height": 256, "prompt": json.dumps(workflow or PASSTHROUGH), **params},
    }


def post(server, path: str, body, headers=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    result = server.request(
        "POST", path, body=raw, headers={"Content-Type": "application/json", **(headers or {})}
    )
    return result.status, result.json()


def assert_nothing_started(server, headers=None):
    result = server.request("GET", "/streams", headers=headers)
    assert result.status == 200
    assert result.json()["count"] == 0 or all(
        s["state"] not in ACTIVE_STATES for s in result.json()["streams"].values()
    )


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_missing_field_bad_json_and_prompt_not_object(comfyui, prefix):
    body = start_body(comfyui)
    del body["subscribe_url"]
    assert post(comfyui, prefix + "/stream/start", body) == (
        400,
        {"error": "Missing required field: subscribe_url", "field": "subscribe_url"},
    )

    status, answer = post(comfyui, prefix + "/stream/start", b'{"subscribe_url": "http://127.0.0.1:1/x",')
    assert status == 400
    assert answer["error"].startswith("Request body is not valid JSON: ")

    status, answer = post(comfyui, prefix + "/live-video-to-video", start_body(comfyui, prompt="[1, 2]"))
    assert status == 400
    assert answer["error"].startswith("Field params.prompt must be a workflow object")

    status, answer = post(comfyui, prefix + "/stream/start", start_body(comfyui, prompt='{"1": '))
    assert status == 400
    assert answer["error"].startswith(
        "Invalid prompt JSON in params.prompt: Expecting value: line 1 column 7"
    )
    assert_nothing_started(comfyui)


def test_width_and_height_out_of_range(comfyui):
    status, answer = post(comfyui, "/stream/start", start_body(comfyui, width=4096))
    assert status == 400
    assert answer == {
        "error": "Field params.width must be a multiple of 8 between 64 and 2048, got 4096",
        "field": "params.width",
    }
    status, answer = post(comfyui, "/stream/start", start_body(comfyui, height=100))
    assert status == 400 and answer["field"] == "params.height"


def test_workflow_errors_name_node_type_input_and_reason(comfyui):
    workflow = {
        "1": {"class_type": "TrickleInput", "inputs": {}},
        # ImageScale is a V1 node: ComfyUI 0.3.75 checks combo values only for V1 nodes
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "sideways",
                                                     "width": 64, "height": 64, "crop": "disabled"}},
        "3": {"class_type": "ImageInvert", "inputs": {}},
        "4": {"class_type": "ImageBlend", "inputs": {"image1": ["2", 0], "image2": ["3", 0],
                                                     "blend_factor": 7.0, "blend_mode": "normal"}},
        "5": {"class_type": "TrickleOutput", "inputs": {"images": ["4", 0]}},
    }  # fmt: skip
    status, answer = post(comfyui, "/stream/start", start_body(comfyui, workflow=workflow))
    assert status == 400, answer
    node_errors = answer["node_errors"]
    assert set(node_errors) == {"2", "3", "4"}

    def reasons(node_id):
        assert node_errors[node_id]["class_type"] == workflow[node_id]["class_type"]
        return {(e["type"], e["extra_info"].get("input_name")) for e in node_errors[node_id]["errors"]}

    assert ("value_not_in_list", "upscale_method") in reasons("2")
    assert ("required_input_missing", "image") in reasons("3")
    assert ("value_bigger_than_max", "blend_factor") in reasons("4")
    for node_id in ("2", "3", "4"):
        assert node_id in answer["error"]
    assert_nothing_started(comfyui)


def test_unknown_node_type_is_named(comfyui):
    workflow = dict(INVERT, **{"2": {"class_type": "NoSuchNode", "inputs": {"image": ["1", 0]}}})
    status, answer = post(comfyui, "/stream/start", start_body(comfyui, workflow=workflow))
    assert status == 400
    assert answer["node_errors"]["2"]["class_type"] == "NoSuchNode"
    assert "NoSuchNode" in answer["error"] or "NoSuchNode" in json.dumps(answer["node_errors"])


@pytest.mark.parametrize(
    ("workflow", "missing"),
    [
        ({"1": {"class_type": "EmptyImage",
                "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
          "2": {"class_type": "TrickleOutput", "inputs": {"images": ["1", 0]}}}, "input"),
        ({"1": {"class_type": "TrickleInput", "inputs": {}},
          "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}, "output"),
    ],
)  # fmt: skip
def test_workflow_without_live_input_or_output(comfyui, workflow, missing):
    status, answer = post(comfyui, "/stream/start", start_body(comfyui, workflow=workflow))
    assert status == 400
    assert f"no live {missing} node" in answer["error"]


def test_foreign_trickle_host_is_403(comfyui):
    body = start_body(comfyui)
    body["publish_url"] = "http://192.0.2.7:8935/out"
    status, answer = post(comfyui, "/stream/start", body)
    assert status == 403
    assert answer["field"] == "publish_url" and answer["host"] == "192.0.2.7"
    assert "COMFY_TRICKLE_ALLOWED_HOSTS" in answer["error"]


def test_unknown_stream_is_404(comfyui):
    for method, path in (("GET", "/stream/nope/status"), ("POST", "/stream/nope/stop"),
                         ("GET", "/api/stream/nope/status")):  # fmt: skip
        result = comfyui.request(method, path)
        assert result.status == 404, path
        assert "nope" in result.json()["error"]


def test_body_over_the_default_limit_is_413(comfyui):
    body = start_body(comfyui)
    body["padding"] = "x" * (4 * 1024 * 1024)
    status, answer = post(comfyui, "/stream/start", body)
    assert status == 413
    assert answer["max_bytes"] == 4 * 1024 * 1024


def test_duplicate_id_is_409_and_stop_frees_it(comfyui):
    stream_id = f"dup-{uuid.uuid4().hex[:6]}"
    body = start_body(comfyui, stream_id)
    relay_channel(comfyui, f"{stream_id}-in")
    status, answer = post(comfyui, "/stream/start", body)
    assert status == 200, answer
    assert answer["request_id"] == stream_id and answer["status"] == "success"
    assert answer["config"]["width"] == 256
    try:
        status, answer = post(comfyui, "/stream/start", body)
        assert status == 409
        assert stream_id in answer["error"]
        status, listing = comfyui.get("/api/streams")
        assert status == 200 and stream_id in listing["streams"]
        status, one = comfyui.get(f"/stream/{stream_id}/status")
        assert status == 200 and one["request_id"] == stream_id
    finally:
        status, final = post(comfyui, f"/stream/{stream_id}/stop", {})
    assert status == 200 and final["status"] == "success"
    assert final["state"] in ("stopped", "completed")


@pytest.mark.relay(autocreate=True)
async def test_token_limit_and_small_body_on_a_guarded_server(guarded_comfyui, relay):
    # A server with a token has no dev relay (it cannot check a token), so the streams publish through
    # this test's own relay; requests go from a thread because that relay serves on this event loop.
    server = guarded_comfyui
    for method, path in (("GET", "/streams"), ("POST", "/stream/start"), ("GET", "/api/stream/x/status"),
                         ("POST", "/stream/x/stop")):  # fmt: skip
        result = server.request(method, path, body=b"{}" if method == "POST" else None)
        assert result.status == 401, path
        assert result.headers["WWW-Authenticate"].startswith("Bearer")
        assert result.json() == {"error": "Missing bearer token"}
    result = server.request("GET", "/streams", headers={"Authorization": "Bearer nope"})
    assert (result.status, result.json()) == (401, {"error": "Invalid bearer token"})

    big = start_body(server)
    big["padding"] = "x" * 5000
    status, answer = post(server, "/stream/start", big, AUTH)
    assert status == 413 and answer["max_bytes"] == 4096

    def on_own_relay(body: dict) -> dict:
        stream_id = body["gateway_request_id"]
        return {**body, "subscribe_url": relay.channel_url(f"{stream_id}-in"),
                "publish_url": relay.channel_url(f"{stream_id}-out")}  # fmt: skip

    first, second = on_own_relay(start_body(server)), on_own_relay(start_body(server))
    status, answer = await asyncio.to_thread(post, server, "/stream/start", first, AUTH)
    assert status == 200, answer
    try:
        status, answer = await asyncio.to_thread(post, server, "/stream/start", second, AUTH)
        assert status == 429
        assert "limit" in answer["error"]
    finally:
        stop = f"/stream/{first['gateway_request_id']}/stop"
        status, _ = await asyncio.to_thread(post, server, stop, {}, AUTH)
        assert status == 200
    status, answer = await asyncio.to_thread(post, server, "/stream/start", second, AUTH)
    assert status == 200, answer
    await asyncio.to_thread(post, server, f"/stream/{second['gateway_request_id']}/stop", {}, AUTH)
