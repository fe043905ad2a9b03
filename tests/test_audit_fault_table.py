"""Issue 13's fault table: one test per case of the outside audit, against the real ComfyUI (subprocess,
--cpu), our real trickle relay and real H.264, everything on 127.0.0.1. Each test failed before its fix.

Case of issue 13, then the test that proves it (a bare name is in this module):

1a  a redirect from an allowed host to a refused one is not followed
    -> test_item1_a_redirect_is_not_followed_and_the_target_answer_is_not_echoed
1b  the address actually connected to is checked (not only the name in the URL)
    -> test_item1_b_the_address_actually_connected_to_is_checked
1c  errors never echo remote bodies (an input answering 403, an output answering 500, both with a body)
    -> test_item1_c_errors_never_echo_remote_bodies (and 1a: the redirect target's answer)
2a  a prompt queued by hand (ticket copied from the queue) neither reads nor injects a protected
    stream's frames
    -> test_item2_a_prompt_queued_by_hand_neither_reads_nor_injects_a_protected_streams_frames
2b  without a token a user's own prompt reads a stream's newest frame (documented in the README)
    -> test_item2_without_a_token_a_users_own_prompt_reads_the_newest_frame
3a  relay: with a token the dev relay is off (nothing answers, not even DELETE), said at start-up
    -> test_item3_with_a_token_the_relay_is_off_and_says_so
3b  relay: segments are bounded (the audit's 20 MB POSTs answer 413)
    -> test_item3_relay_segments_are_bounded
3c  token: every stream and test-source route requires it
    -> tests/test_routes_token_and_limits.py::test_every_route_answers_401_without_the_token
3d  settings: the UI keeps the token in localStorage, never in ComfyUI's server settings
    (an unauthenticated GET /settings does not return it; browser)
    -> tests/test_ui_browser.py::test_settings_live_under_trickle_and_the_token_goes_out_as_bearer
3e  websocket: the status events carry nothing secret (neither the token nor URL credentials)
    -> test_item3_4_websocket_status_events_carry_nothing_secret
4a  URL secrets (user:password@, secret query values) are redacted in status bodies, errors and logs
    -> test_item4_url_secrets_are_redacted_in_status_errors_and_logs
4b  ... and in websocket events
    -> test_item3_4_websocket_status_events_carry_nothing_secret
5   stop frees a stream's threads at once and start/stop cycles keep RSS bounded
    -> test_item5_start_stop_cycles_free_threads_at_once_and_bound_memory (200 cycles: bench/soak.py)
6   an output refusing every segment ends the stream in error with the HTTP status
    -> test_item6_output_refusing_every_segment_ends_the_stream_in_error_with_the_status
7a  a stream started before its publisher waits (state waiting), then runs
    -> test_item7_stream_started_before_its_publisher_waits_then_runs
7b  ... or errors once the configurable wait is over
    -> test_item7_stream_whose_publisher_never_comes_errors_after_the_wait
7c  the wait's bounds: 400 naming the field
    -> test_item7_input_wait_out_of_bounds_is_a_400_naming_the_field
7d  UI message: the UI says what happened ("waiting for input" toast and card, not a green "live";
    browser)
    -> test_item7_the_ui_says_the_stream_waits_for_its_input_then_runs
    and when the wait ends in error, the card shows the error:
    -> tests/test_ui_browser.py::test_a_failing_stream_shows_its_error_and_turns_the_indicator_red
8a  a stream id reused right after Stop (local test source) keeps running: the server side
    -> test_item8_reused_stream_id_with_the_local_test_source_keeps_running
8b  ... from the UI: Stop, then Local test source with the same id at once (browser)
    -> tests/test_ui_stream_id_reuse.py::test_a_reused_stream_id_keeps_running_after_stop_in_the_ui
    and the page's rule (when a test source stops), unit: tests/js/test_sources.test.mjs (node --test,
    run by tests/test_ui_js_unit.py)
9a  a simple stream keeps its rate beside a 5,000-node workflow; status shows the executor share
    -> test_item9_a_simple_stream_keeps_its_rate_beside_a_5000_node_workflow
9b  a configurable workflow-size limit
    -> test_item9_a_workflow_over_the_node_limit_answers_400_naming_the_limit
9c  a frame's prompt no longer carries the other streams' workflows; executor time is accounted per
    stream and a stream over its share waits (unit)
    -> in tests/test_cache_keepalive_unit.py:
       test_a_stream_carries_others_frame_independent_nodes_and_the_last_user_prompt_as_copies,
       test_executor_time_is_charged_exclusively_and_shares_add_up,
       test_a_stream_over_its_share_waits_only_while_another_has_a_frame_ready
10a int: a 400-digit width answers 400, not 500
    -> test_item10_a_400_digit_width_is_a_400_not_a_500
10b cycle: a workflow with a dependency cycle names its nodes
    -> test_item10_a_workflow_with_a_cycle_names_the_nodes_in_it
10c traceback: prompts in flight at stop log no traceback
    -> test_item10_stopping_with_prompts_in_flight_logs_no_traceback

The issue's other must-shows: the route fuzz test is tests/test_fuzz_routes.py, the soak bench/soak.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import test_ui_browser as page_setup
from aiohttp import web
from comfy_trickle.devtools.stream_harness import (
    INVERT,
    SEED_PASSTHROUGH,
    StreamAPI,
    TimedOutput,
    collect_output,
    collect_output_timed,
    publish_synthetic,
    stream_channels,
)
from comfy_trickle.devtools.tiny_models import big_workflow
from comfy_trickle.media.synthetic import make_test_frame, psnr, read_frame_index
from comfy_trickle.routes.security import HostAllowlist
from comfy_trickle.trickle.address_guard import TrickleHostRefused
from comfy_trickle.trickle.subscriber import TrickleSubscriber
from test_ui_browser import INVERT_WORKFLOW, TOAST, UI_TIMEOUT_MS, is_success_toast, source_body, unique_id

logger = logging.getLogger(__name__)
pytestmark = [pytest.mark.timeout(120), pytest.mark.relay(autocreate=True)]

SIZE = 128
INTERNAL_SECRET = "INTERNAL-SERVICE-ANSWER-4711"
TOKEN = "audit-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# slow enough that the stream's prompts are seen in the queue, every frame kept (no backlog drops)
SLOW_INVERT = {
    "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
    "2": {"class_type": "TrickleTestSlow", "inputs": {"image": ["1", 0], "seconds": 0.03}},
    "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
    "4": {"class_type": "TrickleOutput", "inputs": {"images": ["3", 0], "stream_id": ""}},
}
MAGENTA = 0xFF00FF


# --- shared helpers ----------------------------------------------------------------------------------------
class LocalServer:
    """A tiny aiohttp server on 127.0.0.1 answering ``handler(request)`` to everything; it counts the
    requests and keeps "METHOD /path" of each (their bodies are read first, like a real server's)."""

    def __init__(self, handler: Callable[[web.Request], web.StreamResponse]) -> None:
        self.hits = 0
        self.requests: list[str] = []
        self._handler = handler
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> LocalServer:
        async def handle(request: web.Request) -> web.StreamResponse:
            await request.read()
            self.hits += 1
            self.requests.append(f"{request.method} {request.path}")
            return self._handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@contextlib.asynccontextmanager
async def refusing_server(status: int) -> AsyncIterator[tuple[str, list[str]]]:
    """A LocalServer answering ``status`` to everything; yields (base URL, requests seen)."""
    async with LocalServer(lambda request: web.Response(status=status, text="not here")) as server:
        yield f"http://127.0.0.1:{server.port}", server.requests


def frames_out(at_least: int):
    return lambda body: body["counters"]["frames_out"] >= at_least or body["state"] in ("completed", "error")


@pytest.fixture
def ui(comfyui):
    """The browser page of tests/test_ui_browser.py for one test (7d): that module shares one page per
    module, but a Playwright page keeps its event loop running on this thread while it is open, and this
    module's async tests cannot run after it then."""
    yield from page_setup.ui.__wrapped__(comfyui)


@pytest.fixture
async def protected_api(comfyui_factory):
    """A ComfyUI with COMFY_TRICKLE_TOKEN set (no dev relay: streams use the test's relay)."""
    server = comfyui_factory(env={"COMFY_TRICKLE_TOKEN": TOKEN})
    client = StreamAPI(server.base_url, headers=AUTH)
    client.server = server
    yield client
    await client.stop_active()
    await client.close()


async def queue_prompt(api, workflow: dict) -> str:
    """POST /prompt as anyone who reaches ComfyUI can: the queue's front, no token needed."""
    status, body = await api.call("POST", "/prompt", {"prompt": workflow, "front": True, "client_id": "x"})
    assert status == 200, body
    return body["prompt_id"]


async def prompt_result(api, prompt_id: str, timeout: float = 60.0) -> dict:
    """The history entry of a finished prompt."""
    deadline = time.monotonic() + timeout
    while True:
        _, history = await api.call("GET", f"/history/{prompt_id}")
        if prompt_id in (history or {}) and history[prompt_id]["status"].get("completed") is not None:
            return history[prompt_id]
        assert time.monotonic() < deadline, f"prompt {prompt_id} did not finish"
        await asyncio.sleep(0.05)


def failure_message(entry: dict) -> str:
    errors = [data for event, data in entry["status"]["messages"] if event == "execution_error"]
    assert entry["status"]["status_str"] == "error" and errors, entry["status"]
    return f"{errors[0]['exception_type']}: {errors[0]['exception_message']}"


async def copied_ticket(api, stream_id: str, timeout: float = 30.0) -> int:
    """A frame_ticket of the stream's own prompts, read from ComfyUI's queue itself (people's ``GET /queue``
    leaves frame prompts out; tickets are not secret: any code in the process, or a guess, finds one)."""
    deadline = time.monotonic() + timeout
    while True:
        _, queue = await api.call("GET", "/raw-queue")  # tests/custom_nodes/cache_probe
        for item in queue["queue_running"] + queue["queue_pending"]:
            assert len(item) == 5  # the sensitive part (where the frame secret rides) is never shown
            for node in item[2].values():
                inputs = node["inputs"]
                if node["class_type"] == "TrickleInput" and inputs.get("stream_id") == stream_id:
                    if inputs.get("frame_ticket"):
                        return int(inputs["frame_ticket"])
        assert time.monotonic() < deadline, "no prompt of the stream seen in the queue"
        await asyncio.sleep(0.01)


def thread_count(pid: int) -> int:
    """Threads of process ``pid`` right now (Linux: one folder per thread)."""
    return len(os.listdir(f"/proc/{pid}/task"))


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


# --- 1. the host allowlist and redirects -------------------------------------------------------------------
async def test_item1_a_redirect_is_not_followed_and_the_target_answer_is_not_echoed(api, relay):
    async with LocalServer(lambda r: web.Response(status=403, text=INTERNAL_SECRET)) as internal:
        target = f"http://127.0.0.1:{internal.port}/admin"
        redirect = lambda r: web.Response(status=302, headers={"Location": target})  # noqa: E731
        async with LocalServer(redirect) as redirector:
            status, body = await api.start(
                "redirected", f"http://127.0.0.1:{redirector.port}/in", relay.channel_url("redir-out"),
                SEED_PASSTHROUGH,
            )
            assert status == 200, body
            final = await api.wait_state("redirected", {"error", "completed"})
            assert redirector.hits >= 1
    assert internal.hits == 0  # the refused hop was never contacted
    assert final["state"] == "error"
    assert "HTTP 302" in final["error"]["message"]
    assert "redirects are not followed" in final["error"]["message"]
    assert INTERNAL_SECRET not in str(final)


async def test_item1_b_the_address_actually_connected_to_is_checked(relay):
    relay.relay.create_channel("resolved", "video/MP2T")
    relay.relay.write_segment("resolved", b"segment")
    url = f"http://localhost:{relay.port}/resolved"
    # A policy that refuses the address the name resolves to: the URL (by name) would pass, the
    # connection must not. 127.0.0.1 stands for "an address the name did not resolve to before".
    refused_address = lambda host, address, port: address not in ("127.0.0.1", "::1")  # noqa: E731
    subscriber = TrickleSubscriber(url, address_check=refused_address, max_retries=0)
    with pytest.raises(TrickleHostRefused):
        await subscriber.next_segment()
    await subscriber.close()
    # the same subscriber with an allowing policy reads the segment: the refusal was the check's doing
    allowed = TrickleSubscriber(url, address_check=HostAllowlist().address_allowed)
    segment = await asyncio.wait_for(allowed.next_segment(), 10)
    assert segment is not None and await segment.read_all() == b"segment"
    await allowed.close()
    # production policy: loopback by name only when the address really is loopback
    allowlist = HostAllowlist(["gateway.example:8935"])
    assert allowlist.address_allowed("localhost", "127.0.0.2", 80)
    assert not allowlist.address_allowed("localhost", "10.1.2.3", 80)
    assert allowlist.address_allowed("gateway.example", "10.1.2.3", 8935)
    assert not allowlist.address_allowed("gateway.example", "10.1.2.3", 22)


async def test_item1_c_errors_never_echo_remote_bodies(api, relay, comfyui):
    # an allowed host answering what a prober would like to read: 403 to the input's GETs, 500 to the
    # output's POSTs, each with a body
    answer = lambda r: web.Response(status=403 if r.method == "GET" else 500, text=INTERNAL_SECRET)  # noqa: E731
    log_before = len(comfyui.log_text())
    relay.relay.create_channel("echo-src", "video/MP2T")
    source_url = relay.channel_url("echo-src")
    source = asyncio.create_task(publish_synthetic(source_url, 30 * 60, width=SIZE, height=SIZE))
    try:
        async with LocalServer(answer) as remote:
            status, body = await api.start(
                "echo-in", f"http://127.0.0.1:{remote.port}/in", relay.channel_url("echo-in-out"), INVERT,
                SIZE, SIZE,
            )
            assert status == 200, body
            refused_input = await api.wait_state("echo-in", {"error", "completed"})
            status, body = await api.start(
                "echo-out", source_url, f"http://127.0.0.1:{remote.port}/out", INVERT, SIZE, SIZE
            )
            assert status == 200, body
            refused_output = await api.wait_state("echo-out", {"error", "completed"}, timeout=60)
            assert any(line.startswith("POST /out/") for line in remote.requests), remote.requests
    finally:
        source.cancel()
        await asyncio.gather(source, return_exceptions=True)
    assert refused_input["state"] == "error", refused_input
    assert "HTTP 403" in refused_input["error"]["message"], refused_input
    assert refused_output["state"] == "error", refused_output
    assert "500" in refused_output["error"]["message"], refused_output
    for shown in (str(refused_input), str(refused_output), comfyui.log_text()[log_before:]):
        assert INTERNAL_SECRET not in shown


# --- 2. frames flow only between a stream and its own prompts ----------------------------------------------
async def test_item2_a_prompt_queued_by_hand_neither_reads_nor_injects_a_protected_streams_frames(
    protected_api, relay
):
    api, frame_count = protected_api, 60
    sub_url, pub_url = stream_channels(relay, "guarded")
    status, body = await api.start("guarded", sub_url, pub_url, SLOW_INVERT, 128, 128, max_backlog_s=60.0)
    assert status == 200, body
    seen = TimedOutput([], [], [])
    collector = asyncio.create_task(collect_output_timed(pub_url, output=seen))
    publisher = asyncio.create_task(publish_synthetic(sub_url, frame_count, width=128, height=128, end=False))
    ticket = await copied_ticket(api, "guarded")

    steal = {  # read the protected stream's frame with the copied ticket (and send it back out)
        "1": {"class_type": "TrickleInput", "inputs": {"stream_id": "guarded", "frame_ticket": ticket}},
        "2": {"class_type": "TrickleOutput",
              "inputs": {"images": ["1", 0], "stream_id": "guarded", "frame_ticket": ticket}},
    }  # fmt: skip
    inject = {  # a magenta frame into the protected stream's output
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 128, "height": 128, "batch_size": 1, "color": MAGENTA}},
        "2": {"class_type": "TrickleOutput",
              "inputs": {"images": ["1", 0], "stream_id": "guarded", "frame_ticket": ticket}},
    }  # fmt: skip
    newest = {  # a user's own prompt reading the newest frame (ticket 0)
        "1": {"class_type": "TrickleInput", "inputs": {"stream_id": "guarded"}},
        "2": {"class_type": "TrickleOutput", "inputs": {"images": ["1", 0], "stream_id": "guarded"}},
    }
    attempts = [await queue_prompt(api, workflow) for workflow in (steal, inject, newest)]
    messages = [failure_message(await prompt_result(api, prompt_id)) for prompt_id in attempts]
    assert "StreamAccessDenied" in messages[0] and "was not queued by stream 'guarded'" in messages[0]
    assert "StreamAccessDenied" in messages[1] and "was not queued by stream 'guarded'" in messages[1]
    assert "protected by COMFY_TRICKLE_TOKEN" in messages[2]

    await publisher
    # stopped once a viewer has every frame (not ended by the input: the end-of-input flush is another
    # test's). The newest frame may still be in flight (held by a decoder, or encoded and cut by the stop).
    deadline = time.monotonic() + 60
    while len(seen.frames) < frame_count - 1:
        assert time.monotonic() < deadline, (len(seen.frames), await api.status("guarded"))
        await asyncio.sleep(0.05)
    status, final = await api.stop("guarded")
    assert status == 200 and final["state"] == "stopped", final
    output = await asyncio.wait_for(collector, 60)
    counters = final["counters"]
    assert counters["frames_out"] >= len(output.frames) and counters["frames_dropped"] == 0, counters
    # every output frame is its own input frame inverted: nothing injected, nothing lost
    indices = [read_frame_index(255 - frame.rgb) for frame in output.frames]
    assert indices == list(range(len(output.frames))), indices
    for frame in output.frames:
        index = read_frame_index(255 - frame.rgb)
        assert psnr(255 - frame.rgb, make_test_frame(index, 128, 128)) > 28.0


async def test_item2_without_a_token_a_users_own_prompt_reads_the_newest_frame(api, relay):
    sub_url, pub_url = stream_channels(relay, "open")
    status, body = await api.start("open", sub_url, pub_url, SLOW_INVERT, 128, 128)
    assert status == 200, body
    collector = asyncio.create_task(collect_output(pub_url))
    publisher = asyncio.create_task(publish_synthetic(sub_url, 45, width=128, height=128))
    await copied_ticket(api, "open")  # the stream runs
    peek = {
        "1": {"class_type": "TrickleInput", "inputs": {"stream_id": "open"}},
        "2": {"class_type": "TrickleOutput", "inputs": {"images": ["1", 0], "stream_id": "open"}},
    }
    entry = await prompt_result(api, await queue_prompt(api, peek))
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert entry["outputs"]["2"]["text"] == ["not sent: only prompts queued by stream open reach its output"]
    # and a copied ticket does nothing there either (no token: isolation of the stream's own frames stays)
    ticket = await copied_ticket(api, "open")
    steal = {
        "1": {"class_type": "TrickleInput", "inputs": {"stream_id": "open", "frame_ticket": ticket}},
        "2": {"class_type": "TrickleOutput", "inputs": {"images": ["1", 0], "stream_id": "open"}},
    }
    entry = await prompt_result(api, await queue_prompt(api, steal))
    assert "was not queued by stream 'open'" in failure_message(entry)
    await publisher
    await asyncio.wait_for(collector, 60)


# --- 3. the token covers everything; 4. no secrets in what we show or log -------------------------------
async def test_item3_with_a_token_the_relay_is_off_and_says_so(comfyui_factory):
    protected = comfyui_factory(env={"COMFY_TRICKLE_TOKEN": "item3-token"})
    # the relay cannot check a token (trickle peers send none): nothing of it answers, not even a DELETE
    for method in ("GET", "POST", "DELETE"):
        body = b"x" if method == "POST" else None
        answer = protected.request(method, "/trickle/relay/some-stream-in/0", body=body)
        assert answer.status in (404, 405), (method, answer.status)
    assert "dev relay and test source are OFF because COMFY_TRICKLE_TOKEN is set" in protected.startup_log


async def test_item3_relay_segments_are_bounded(relay):
    from aiohttp.test_utils import TestClient, TestServer
    from comfy_trickle.dev.routes import MAX_RELAY_SEGMENT_BYTES, DevRoutes

    client = TestClient(TestServer(DevRoutes().get_app()))
    await client.start_server()
    try:
        big = bytes(MAX_RELAY_SEGMENT_BYTES + 1024 * 1024)

        async def chunks():
            for start in range(0, len(big), 256 * 1024):
                yield big[start : start + 256 * 1024]

        answer = await client.post("/trickle/relay/big/0", data=chunks())
        assert answer.status == 413
    finally:
        await client.close()


async def test_item3_4_websocket_status_events_carry_nothing_secret(protected_api, relay):
    api = protected_api
    with_credentials = lambda url: url.replace("http://", "http://alice:pa55word@", 1)  # noqa: E731
    async with aiohttp.ClientSession() as anyone:  # ComfyUI's websocket takes no token: anyone can listen
        socket = await anyone.ws_connect(f"{api.server.base_url}/ws?clientId=audit-listener")
        # ComfyUI greets every new socket with "status": from then on no event of a stream is missed
        assert (await socket.receive_json(timeout=30))["type"] == "status"
        messages: list[str] = []

        async def listen() -> None:  # every message, until both streams' final states arrived
            finished: set[str] = set()
            async for message in socket:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                messages.append(message.data)
                event = json.loads(message.data)
                if event["type"] == "trickle.status" and event["data"]["state"] in ("stopped", "error"):
                    finished.add(event["data"]["request_id"])
                    if {"ws-run", "ws-wait"} <= finished:
                        return

        listener = asyncio.create_task(listen())
        try:
            # a running stream whose URLs carry credentials, stopped after some frames
            sub_url, pub_url = stream_channels(relay, "ws-run")
            status, body = await api.start(
                "ws-run", with_credentials(sub_url), with_credentials(pub_url), INVERT, SIZE, SIZE
            )
            assert status == 200, body
            publisher = asyncio.create_task(publish_synthetic(sub_url, 30 * 60, width=SIZE, height=SIZE))
            running = await api.wait_status("ws-run", frames_out(10))
            assert running["state"] == "running", running
            status, final = await api.stop("ws-run")
            assert status == 200 and final["state"] == "stopped", final
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
            # a stream whose input never comes, with secrets in its query: its error names the URL
            secret_query = relay.channel_url("ws-nothing") + "?token=QUERYSECRET&sig=SIG9"
            status, body = await api.start(
                "ws-wait", secret_query, with_credentials(relay.channel_url("ws-wait-out")), INVERT, SIZE,
                SIZE, input_wait_s=1,
            )
            assert status == 200, body
            await asyncio.wait_for(listener, 60)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await socket.close()
    statuses = [event["data"] for event in map(json.loads, messages) if event["type"] == "trickle.status"]
    states = {(status["request_id"], status["state"]) for status in statuses}
    assert {("ws-run", "running"), ("ws-run", "stopped"), ("ws-wait", "error")} <= states, states
    # the events do carry the URLs and the error, redacted
    assert all(status["config"]["subscribe_url"].startswith("http://REDACTED@127.0.0.1")
               for status in statuses if status["request_id"] == "ws-run")  # fmt: skip
    error = next(status["error"]["message"] for status in statuses if status["state"] == "error")
    assert "ws-nothing" in error, error
    for message in messages:
        for secret in (TOKEN, "pa55word", "alice", "QUERYSECRET", "SIG9"):
            assert secret not in message, (secret, message)


async def test_item4_url_secrets_are_redacted_in_status_errors_and_logs(api, relay, comfyui):
    secret_url = f"http://alice:pa55word@127.0.0.1:{relay.port}/no-such-channel?token=QUERYSECRET&sig=SIG9"
    out_url = relay.channel_url("redacted-out")
    status, body = await api.start("redacted", secret_url, out_url, SEED_PASSTHROUGH)
    assert status == 200, body
    final = await api.wait_state("redacted", {"error", "completed"})
    _, listed = await api.call("GET", "/streams")
    for shown in (str(body), str(final), str(listed), comfyui.log_text()):
        for secret in ("pa55word", "alice", "QUERYSECRET", "SIG9"):
            assert secret not in shown
    assert final["config"]["subscribe_url"] == (
        f"http://REDACTED@127.0.0.1:{relay.port}/no-such-channel?token=REDACTED&sig=REDACTED"
    )
    assert final["state"] == "error" and "http://REDACTED@127.0.0.1" in final["error"]["message"]


# --- 5. memory across start/stop ---------------------------------------------------------------------------
CYCLES = 30
WARMUP_CYCLES = 5
# the audit saw 15 MB per cycle (1.3 -> 2.8 GB over 100 cycles); with threads freed but sessions left to a
# later collection this run grew 17-23 MB; now about 1 MB (bench/soak.py measures the 200-cycle figure)
RSS_GROWTH_BOUND = 12 * 1024 * 1024
# asyncio's default executor (to_thread) starts its idle workers lazily, up to its pool size, so a worker
# or two may appear after the warm-up; a stream's own threads (decode, encode, x264, swscale: 4-8 per
# stream before the fix) left behind would pass this within three cycles
EXECUTOR_SLACK = 2


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_item5_start_stop_cycles_free_threads_at_once_and_bound_memory(api, relay, comfyui):
    pid = comfyui.process.pid
    relay.relay.create_channel("cycle-in", "video/MP2T")
    in_url, out_url = relay.channel_url("cycle-in"), relay.channel_url("cycle-out")
    # one long-running input all cycles subscribe to (a live camera), so every stream decodes and encodes
    source = asyncio.create_task(publish_synthetic(in_url, 30 * 600, width=SIZE, height=SIZE))
    baseline_threads = baseline_rss = None
    leftovers: list[tuple[int, int]] = []
    try:
        for cycle in range(WARMUP_CYCLES + CYCLES):
            status, body = await api.start("cycle", in_url, out_url, INVERT, SIZE, SIZE)
            assert status == 200, body
            running = await api.wait_status("cycle", frames_out(5))
            assert running["state"] == "running", running
            status, final = await api.stop("cycle")
            assert status == 200 and final["state"] == "stopped", final
            threads = thread_count(pid)
            if cycle == WARMUP_CYCLES - 1:
                baseline_threads, baseline_rss = threads, rss_bytes(pid)
            elif baseline_threads is not None and threads > baseline_threads + EXECUTOR_SLACK:
                leftovers.append((cycle, threads))
        growth = rss_bytes(pid) - baseline_rss
    finally:
        source.cancel()
        with contextlib.suppress(BaseException):
            await source
    logger.info("RSS grew %.1f MB over %d start/stop cycles (threads back to %s)", growth / 2**20, CYCLES,
                baseline_threads)
    assert not leftovers, f"threads still alive right after stop (baseline {baseline_threads}): {leftovers}"
    assert growth <= RSS_GROWTH_BOUND, f"RSS grew {growth / 2**20:.1f} MB over {CYCLES} cycles"


# --- 6. an output that refuses every segment ---------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_item6_output_refusing_every_segment_ends_the_stream_in_error_with_the_status(api, relay):
    relay.relay.create_channel("refused-in", "video/MP2T")
    in_url = relay.channel_url("refused-in")
    async with refusing_server(405) as (base, seen):
        source = asyncio.create_task(publish_synthetic(in_url, 30 * 60, width=SIZE, height=SIZE))
        try:
            status, body = await api.start("refused", in_url, f"{base}/refused-out", INVERT, SIZE, SIZE)
            assert status == 200, body
            final = await api.wait_status("refused", lambda b: b["state"] not in ("starting", "running"))
        finally:
            source.cancel()
            with contextlib.suppress(BaseException):
                await source
    assert any(line.startswith("POST /refused-out/") for line in seen), seen  # it did try to publish
    assert final["state"] == "error", final
    assert "405" in final["error"]["message"], final["error"]
    assert source.done()


# --- 7. starting before the publisher ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_item7_stream_started_before_its_publisher_waits_then_runs(api, relay):
    in_url, out_url = relay.channel_url("late-in"), relay.channel_url("late-out")
    status, body = await api.start("late", in_url, out_url, INVERT, SIZE, SIZE, input_wait_s=30)
    assert status == 200, body
    assert body["state"] == "waiting", body
    await asyncio.sleep(3)  # the publisher starts 3 s later (the scenario, not a timing assertion)
    waiting = await api.status("late")
    assert waiting["state"] == "waiting" and waiting["error"] is None, waiting
    source = asyncio.create_task(publish_synthetic(in_url, 30 * 60, width=SIZE, height=SIZE))
    try:
        running = await api.wait_status("late", frames_out(15))
        assert running["state"] == "running", running
    finally:
        source.cancel()
        with contextlib.suppress(BaseException):
            await source


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_item7_stream_whose_publisher_never_comes_errors_after_the_wait(api, relay):
    in_url, out_url = relay.channel_url("never-in"), relay.channel_url("never-out")
    status, body = await api.start("never", in_url, out_url, INVERT, SIZE, SIZE, input_wait_s=1.5)
    assert status == 200, body
    assert body["state"] == "waiting", body
    final = await api.wait_status("never", lambda b: b["state"] not in ("waiting", "running"))
    assert final["state"] == "error", final
    message = final["error"]["message"]
    assert "no input" in message and "1.5 s" in message and "never-in" in message, message
    assert final["counters"]["frames_in"] == 0


async def test_item7_input_wait_out_of_bounds_is_a_400_naming_the_field(api, relay):
    in_url, out_url = relay.channel_url("bad-in"), relay.channel_url("bad-out")
    status, body = await api.start("badwait", in_url, out_url, INVERT, SIZE, SIZE, input_wait_s=-1)
    assert status == 400, body
    assert body["field"] == "params.input_wait_s", body


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_item7_the_ui_says_the_stream_waits_for_its_input_then_runs(ui):
    stream_id = unique_id("late-ui")
    ui.started_streams.add(stream_id)
    ui.load_workflow(INVERT_WORKFLOW, "invert.json")
    relay = ui.server.base_url + "/trickle/relay/"
    ui.page.fill("#trickle-subscribe-url", relay + stream_id)  # nobody publishes there yet
    ui.page.fill("#trickle-publish-url", relay + stream_id + "-out")
    ui.page.fill("#trickle-stream-id", stream_id)
    ui.page.fill("#trickle-width", str(SIZE))
    ui.page.fill("#trickle-height", str(SIZE))
    ui.page.click("#trickle-go-live")

    # what happened, in words: the toast says the stream waits (not a green "live"), and so does its card
    toast = ui.page.locator(TOAST, has_text=f"Stream {stream_id}")
    toast.wait_for(timeout=UI_TIMEOUT_MS)
    toast_text = toast.inner_text()
    assert "Trickle: waiting for input" in toast_text, toast_text
    assert "waits for its input channel to be published" in toast_text, toast_text
    assert "Trickle: live" not in toast_text and "started" not in toast_text, toast_text
    assert not is_success_toast(toast)
    card = f'.trickle-stream[data-stream-id="{stream_id}"]'
    ui.wait_card_state(stream_id, "waiting")
    assert ui.page.inner_text(f"{card} .trickle-state") == "waiting for input"
    assert ui.status(stream_id)[1]["state"] == "waiting"

    # the publisher starts later: the same stream runs, and its card says so
    status, source = ui.server.post_json("/trickle/test-source", source_body(stream_id))
    assert status == 200, source
    ui.wait_card_state(stream_id, "running")
    assert ui.page.inner_text(f"{card} .trickle-state") == "running"
    ui.page.wait_for_function(
        page_setup.METRIC_ABOVE, arg=[stream_id, "frames_out", 5], timeout=UI_TIMEOUT_MS
    )
    ui.page.click(f"{card} .trickle-stop")
    ui.wait_card_state(stream_id, "stopped", timeout_ms=15_000)
    ui.server.request("DELETE", f"/trickle/test-source/{stream_id}")


# --- 8. reusing a stream id right after Stop --------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_item8_reused_stream_id_with_the_local_test_source_keeps_running(api):
    stream_id = "reuse-me"
    for cycle in range(5):
        status, source = await api.call(
            "POST", "/trickle/test-source", {"name": stream_id, "width": SIZE, "height": SIZE, "audio": False}
        )
        assert status == 200, source
        status, body = await api.start(stream_id, source["subscribe_url"], source["publish_url"], INVERT,
                                       SIZE, SIZE)
        assert status == 200, (cycle, body)
        # a second of video beyond the first frames: the new stream does not end with the old one
        running = await api.wait_status(stream_id, frames_out(45))
        assert running["state"] == "running", (cycle, running)
        # what the UI does on Stop: stop the stream, then its test source
        status, final = await api.stop(stream_id)
        assert status == 200 and final["state"] == "stopped", (cycle, final)
        status, _ = await api.call("DELETE", f"/trickle/test-source/{stream_id}")
        assert status == 200


# --- 9. fairness --------------------------------------------------------------------------------------------
# Two causes were fixed: a frame's prompt no longer carries other streams' per-frame nodes (so the simple
# stream's prompts stay small), and a stream over its fair share of executor time waits while another
# has work (``streams.fairness``). The figures asserted are counts of frames over wall time with generous
# bounds (the exact figures go to bench/ and the report).
FAIRNESS_SIZE = 64
SIMPLE_FRAMES = 90
HEAVY_NODES = 5000


def heavy_workflow(nodes: int = HEAVY_NODES) -> dict:
    return big_workflow(nodes, size=FAIRNESS_SIZE)


@pytest.fixture
async def big_api(comfyui_factory):
    server = comfyui_factory(env={"COMFY_TRICKLE_MAX_WORKFLOW_NODES": "6000"})
    client = StreamAPI(server.base_url)
    yield client
    await client.stop_active()
    await client.close()


async def start_with_own_channels(api, relay, stream_id, workflow):
    relay.relay.create_channel(f"{stream_id}-in", "video/MP2T")
    relay.relay.create_channel(f"{stream_id}-out", "video/MP2T")
    sub_url, pub_url = relay.channel_url(f"{stream_id}-in"), relay.channel_url(f"{stream_id}-out")
    status, body = await api.start(
        stream_id, sub_url, pub_url, workflow, FAIRNESS_SIZE, FAIRNESS_SIZE, max_backlog_s=120.0
    )
    assert status == 200, body
    return sub_url, pub_url


async def simple_fps(api, relay, stream_id: str) -> float:
    """Run the simple (invert) stream over SIMPLE_FRAMES real-time frames; frames out per wall second."""
    sub_url, pub_url = await start_with_own_channels(api, relay, stream_id, INVERT)
    began = time.monotonic()
    collector = asyncio.create_task(collect_output(pub_url, timeout=240))
    await publish_synthetic(sub_url, SIMPLE_FRAMES, width=FAIRNESS_SIZE, height=FAIRNESS_SIZE)
    output = await asyncio.wait_for(collector, 240)
    took = time.monotonic() - began
    final = await api.wait_state(stream_id, {"completed", "error"}, timeout=60)
    assert final["state"] == "completed", final
    return len(output.frames) / took


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_item9_a_simple_stream_keeps_its_rate_beside_a_5000_node_workflow(big_api, relay):
    tag = time.monotonic_ns() % 10**9
    alone = await simple_fps(big_api, relay, f"alone-{tag}")

    heavy_id = f"heavy-{tag}"
    workflow = heavy_workflow()
    assert len(workflow) == HEAVY_NODES
    heavy_in, _ = await start_with_own_channels(big_api, relay, heavy_id, workflow)
    heavy_source = asyncio.create_task(
        publish_synthetic(heavy_in, 3000, width=FAIRNESS_SIZE, height=FAIRNESS_SIZE, end=False)
    )
    try:
        for _ in range(1200):  # the heavy stream is running its frames before the simple one starts
            if (await big_api.status(heavy_id))["counters"]["frames_processed"] >= 2:
                break
            await asyncio.sleep(0.1)
        beside = await simple_fps(big_api, relay, f"beside-{tag}")
        heavy = await big_api.status(heavy_id)
    finally:
        heavy_source.cancel()
        await asyncio.gather(heavy_source, return_exceptions=True)
        await big_api.stop(heavy_id)
    assert heavy["state"] == "running" and heavy["counters"]["frames_processed"] >= 3, heavy
    assert 0.0 <= heavy["executor_share"] <= 1.0
    # generous: the simple stream keeps at least half its own rate (before the fix: a few percent)
    assert beside >= 0.5 * alone, (beside, alone, heavy["counters"])


async def test_item9_a_workflow_over_the_node_limit_answers_400_naming_the_limit(comfyui, relay):
    api = StreamAPI(comfyui.base_url)
    try:
        status, body = await api.start(
            "too-big",
            relay.channel_url("tb-in"),
            relay.channel_url("tb-out"),
            heavy_workflow(1001),
            FAIRNESS_SIZE,
            FAIRNESS_SIZE,
        )
    finally:
        await api.close()
    assert status == 400, body
    assert body["limit"] == "max_workflow_nodes" and body["max_workflow_nodes"] == 1000, body
    assert "1001 nodes, over the limit of 1000 (max_workflow_nodes" in body["error"], body


# --- 10. small ones -----------------------------------------------------------------------------------------
async def test_item10_a_400_digit_width_is_a_400_not_a_500(api, relay):
    status, body = await api.start(
        "huge-width", relay.channel_url("huge-in"), relay.channel_url("huge-out"), SEED_PASSTHROUGH,
        width=10**400,
    )
    assert status == 400, body
    assert body["field"] == "params.width"
    assert len(body["error"]) < 200  # the number is not echoed in full


async def test_item10_a_workflow_with_a_cycle_names_the_nodes_in_it(api, relay):
    cyclic = {
        "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
        "2": {"class_type": "ImageBlend", "inputs": {
            "image1": ["1", 0], "image2": ["3", 0], "blend_factor": 0.5, "blend_mode": "normal"}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "TrickleOutput", "inputs": {"images": ["3", 0], "stream_id": ""}},
    }  # fmt: skip
    urls = relay.channel_url("cyc-in"), relay.channel_url("cyc-out")
    status, body = await api.start("cyclic", *urls, cyclic)
    assert status == 400, body
    assert sorted(body["node_errors"]) == ["2", "3"]
    assert body["node_errors"]["3"]["class_type"] == "ImageInvert"
    assert body["node_errors"]["2"]["errors"][0]["details"] == (
        "Node '#2' is part of a dependency cycle: #2, #3"
    )
    assert "Dependency cycle" in body["error"]
    _, streams = await api.call("GET", "/streams")
    assert "cyclic" not in streams["streams"]


async def test_item10_stopping_with_prompts_in_flight_logs_no_traceback(api, relay, comfyui):
    slow = {
        "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
        "2": {"class_type": "TrickleTestSlow", "inputs": {"image": ["1", 0], "seconds": 0.1}},
        "3": {"class_type": "TrickleOutput", "inputs": {"images": ["2", 0], "stream_id": ""}},
    }
    log_before = len(comfyui.log_text())
    sub_url, pub_url = stream_channels(relay, "busy")
    for attempt in range(3):  # three stops, each with a prompt in flight
        stream_id = f"busy-{attempt}"
        status, body = await api.start(stream_id, sub_url, pub_url, slow, 128, 128)
        assert status == 200, body
        publisher = asyncio.create_task(publish_synthetic(sub_url, 300, width=128, height=128, end=False))
        await copied_ticket(api, stream_id)
        status, final = await api.stop(stream_id)
        assert status == 200, final
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)
    log = comfyui.log_text()[log_before:]
    assert "stream busy-2: stopping -> stopped" in log
    # a stream's prompt finding its stream stopped is expected: at most one line, never a traceback
    assert log.count("Traceback") == 0 and "!!! Exception during processing" not in log, log[-4000:]
