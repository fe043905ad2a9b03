"""Every route of ours fuzzed on a real ComfyUI, with and without a token (issue 13): random JSON bodies,
near-valid start requests with one field replaced, random path segments, query strings and headers.
Whatever comes in, the answer is never a 5xx and always arrives within the per-request timeout; our
stream routes answer a 4xx with a JSON body saying what is wrong.

Examples are bounded (``max_examples``) so both servers' fuzzing takes well under a minute; hypothesis
keeps no example database (nothing written into the checkout).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
from comfy_trickle.devtools.stream_harness import SEED_PASSTHROUGH
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.timeout(180)

TOKEN = "fuzz-token"
REQUEST_TIMEOUT_S = 10.0  # a request not answered by then counts as a hang
EXAMPLES = 120
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
    | st.sampled_from([10**400, -(10**400), "", " ", "../../etc", "http://169.254.169.254/", "\x00"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
# what a body may be on the wire: JSON of any shape, or bytes that are not JSON at all
raw_bodies = json_values.map(lambda value: json.dumps(value).encode()) | st.binary(max_size=200)
path_segments = st.text(min_size=1, max_size=30).map(lambda text: urllib.parse.quote(text, safe=""))
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Authorization": st.one_of(header_values, header_values.map(lambda v: f"Bearer {v}")),
        "Content-Type": st.sampled_from(["application/json", "text/plain", "", "multipart/form-data"]),
        "X-Forwarded-For": header_values,
        "Origin": header_values,
    },
)
START_FIELDS = ["gateway_request_id", "subscribe_url", "publish_url", "params", "params.width",
                "params.height", "params.prompt", "params.max_backlog_s"]  # fmt: skip


@pytest.fixture(scope="module")
def protected(comfyui_factory):
    return comfyui_factory(env={"COMFY_TRICKLE_TOKEN": TOKEN})


@pytest.fixture(scope="module", params=["open", "token"])
def server(request, comfyui):
    """The session's ComfyUI (no token, dev relay on), then one with a token (no relay)."""
    server = comfyui if request.param == "open" else request.getfixturevalue("protected")
    yield server
    # a near-valid start may have started a stream, a body a test source: leave none running
    auth = {"Authorization": f"Bearer {TOKEN}"}
    sources = server.request("GET", "/trickle/test-source", headers=auth, timeout=REQUEST_TIMEOUT_S)
    if sources.status == 200:
        for name in json.loads(sources.body)["sources"]:
            server.request("DELETE", f"/trickle/test-source/{urllib.parse.quote(name, safe='')}",
                           headers=auth, timeout=REQUEST_TIMEOUT_S)  # fmt: skip
    listed = server.request("GET", "/streams", headers=auth, timeout=REQUEST_TIMEOUT_S)
    for stream_id, status in json.loads(listed.body or b"{}").get("streams", {}).items():
        if status.get("state") in ("starting", "running", "waiting"):
            server.request("POST", f"/stream/{urllib.parse.quote(stream_id, safe='')}/stop", body=b"{}",
                           headers=auth, timeout=REQUEST_TIMEOUT_S)  # fmt: skip


def call(server, method: str, path: str, body: bytes | None = None, extra: dict[str, str] | None = None):
    """One request; a socket timeout (a hang) fails the test, any answer is returned."""
    result = server.request(method, path, body=body, headers=extra or {}, timeout=REQUEST_TIMEOUT_S)
    assert result.status < 500, (method, path, body, extra, result.status, result.body[:300])
    return result


def assert_json_error(result, where: str) -> None:
    """Our stream routes answer every 4xx with a JSON object naming the problem."""
    if 400 <= result.status < 500:
        answer = json.loads(result.body)
        assert isinstance(answer, dict) and answer.get("error"), (where, result.status, result.body[:300])


def near_valid_start(server, field: str, value: Any) -> dict[str, Any]:
    """A start request that would be accepted, with ``field`` (``params.x`` for a parameter) replaced."""
    body: dict[str, Any] = {
        "gateway_request_id": "fuzz-stream",
        "subscribe_url": f"{server.base_url}/trickle/relay/fuzz-stream-in",
        "publish_url": f"{server.base_url}/trickle/relay/fuzz-stream-out",
        "params": {"width": 128, "height": 128, "prompt": SEED_PASSTHROUGH},
    }
    if field.startswith("params."):
        body["params"][field.removeprefix("params.")] = value
    else:
        body[field] = value
    return body


@FUZZ
@given(body=raw_bodies, extra=headers, prefix=st.sampled_from(["", "/api"]),
       route=st.sampled_from(["/stream/start", "/live-video-to-video"]))  # fmt: skip
def test_start_with_any_body_and_headers(server, body, extra, prefix, route):
    assert_json_error(call(server, "POST", prefix + route, body, extra), route)


@FUZZ
@given(field=st.sampled_from(START_FIELDS), value=json_values, authorized=st.booleans())
def test_start_with_one_field_of_a_valid_request_replaced(server, field, value, authorized):
    auth = {"Authorization": f"Bearer {TOKEN}"} if authorized else {}
    body = json.dumps(near_valid_start(server, field, value)).encode()
    result = call(server, "POST", "/stream/start", body, {"Content-Type": "application/json", **auth})
    assert_json_error(result, field)
    if result.status == 200:  # the replacement happened to be valid: stop it again
        call(server, "POST", "/stream/fuzz-stream/stop", b"{}", auth)


@FUZZ
@given(stream_id=path_segments, body=st.none() | raw_bodies, extra=headers,
       prefix=st.sampled_from(["", "/api"]), query=st.text(max_size=30))  # fmt: skip
def test_stream_routes_with_any_id(server, stream_id, body, extra, prefix, query):
    suffix = f"?{urllib.parse.quote(query, safe='=&')}" if query else ""
    # aiohttp's path parameters exclude braces: such a path never reaches our handlers (ComfyUI answers
    # its own 404/405, still never a 5xx), and no stream id may contain one
    ours = not set(urllib.parse.unquote(stream_id)) & set("{}")
    stop = call(server, "POST", f"{prefix}/stream/{stream_id}/stop{suffix}", body, extra)
    status = call(server, "GET", f"{prefix}/stream/{stream_id}/status{suffix}", None, extra)
    if ours:
        assert_json_error(stop, "stop")
        assert_json_error(status, "status")
    for path in ("/streams", "/stream/limits"):
        assert_json_error(call(server, "GET", prefix + path + suffix, None, extra), path)
    call(server, "GET", f"{prefix}/trickle/preview/{stream_id}.jpg{suffix}", None, extra)


@FUZZ
@given(body=raw_bodies, name=path_segments, extra=headers)
def test_test_source_routes(server, body, name, extra):
    started = call(server, "POST", "/trickle/test-source", body, extra)
    call(server, "GET", "/trickle/test-source", None, extra)
    call(server, "DELETE", f"/trickle/test-source/{name}", None, extra)
    if started.status == 200:  # a body that happened to be valid (every field has a default): stop it
        started_name = urllib.parse.quote(json.loads(started.body)["name"], safe="")
        call(server, "DELETE", f"/trickle/test-source/{started_name}", None, extra)


@FUZZ
@given(channel=path_segments, seq=st.one_of(path_segments, st.integers(-5, 10**30).map(str)),
       body=st.binary(max_size=2000), method=st.sampled_from(["POST", "DELETE", "GET"]))  # fmt: skip
def test_relay_routes(server, channel, seq, body, method):
    # GETs go to channels no one created: a GET of a future segment of a live channel waits by design
    # (trickle's long poll), which is not a hang
    if method == "GET":
        channel = f"never-created-{channel}"
    call(server, method, f"/trickle/relay/{channel}/{seq}", body if method == "POST" else None)
    if method == "POST":  # leave no channel behind on the session's relay
        call(server, "DELETE", f"/trickle/relay/{channel}", None)
    call(server, method if method != "GET" else "POST", f"/trickle/relay/fz-{channel}", None)
    call(server, "DELETE", f"/trickle/relay/fz-{channel}", None)
