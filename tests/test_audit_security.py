"""Issue 13's security findings, one test per case: each failed before its fix (real ComfyUI, real relay,
everything on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from comfy_trickle.devtools.stream_harness import (
    SEED_PASSTHROUGH,
    StreamAPI,
    collect_output,
    publish_synthetic,
    stream_channels,
)
from comfy_trickle.media.synthetic import make_test_frame, psnr, read_frame_index
from comfy_trickle.routes.security import HostAllowlist
from comfy_trickle.trickle.address_guard import TrickleHostRefused
from comfy_trickle.trickle.subscriber import TrickleSubscriber

pytestmark = [pytest.mark.timeout(120), pytest.mark.relay(autocreate=True)]

INTERNAL_SECRET = "INTERNAL-SERVICE-ANSWER-4711"
TOKEN = "audit-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# slow enough that the stream's prompts are seen in GET /queue, every frame kept (no backlog drops)
SLOW_INVERT = {
    "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
    "2": {"class_type": "TrickleTestSlow", "inputs": {"image": ["1", 0], "seconds": 0.03}},
    "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
    "4": {"class_type": "TrickleOutput", "inputs": {"images": ["3", 0], "stream_id": ""}},
}
MAGENTA = 0xFF00FF



class LocalServer:
    """A tiny aiohttp server on 127.0.0.1 that counts requests and answers with ``handler``."""

    def __init__(self, handler) -> None:
        self.hits = 0
        self._handler = handler
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> LocalServer:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.hits += 1
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


async def test_item10_a_400_digit_width_is_a_400_not_a_500(api, relay):
    status, body = await api.start(
        "huge-width", relay.channel_url("huge-in"), relay.channel_url("huge-out"), SEED_PASSTHROUGH,
        width=10**400,
    )
    assert status == 400, body
    assert body["field"] == "params.width"
    assert len(body["error"]) < 200  # the number is not echoed in full


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
    """A frame_ticket of the stream's own prompts, as GET /queue shows it to anyone."""
    deadline = time.monotonic() + timeout
    while True:
        _, queue = await api.call("GET", "/queue")
        for item in queue["queue_running"] + queue["queue_pending"]:
            assert len(item) == 5  # the sensitive part (where the frame secret rides) is never shown
            for node in item[2].values():
                inputs = node["inputs"]
                if node["class_type"] == "TrickleInput" and inputs.get("stream_id") == stream_id:
                    if inputs.get("frame_ticket"):
                        return int(inputs["frame_ticket"])
        assert time.monotonic() < deadline, "no prompt of the stream seen in GET /queue"
        await asyncio.sleep(0.01)


async def test_item2_a_prompt_queued_by_hand_neither_reads_nor_injects_a_protected_streams_frames(
    protected_api, relay
):
    api, frame_count = protected_api, 60
    sub_url, pub_url = stream_channels(relay, "guarded")
    status, body = await api.start("guarded", sub_url, pub_url, SLOW_INVERT, 128, 128, max_backlog_s=60.0)
    assert status == 200, body
    collector = asyncio.create_task(collect_output(pub_url))
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
    # stopped once every frame is out (not ended by the input: the end-of-input flush is another test's);
    # the decoder holds the newest frame until more input comes, so the last one stays in
    deadline = time.monotonic() + 60
    while (await api.status("guarded"))["counters"]["frames_out"] < frame_count - 1:
        assert time.monotonic() < deadline, await api.status("guarded")
        await asyncio.sleep(0.05)
    status, final = await api.stop("guarded")
    assert status == 200 and final["state"] == "stopped", final
    output = await asyncio.wait_for(collector, 60)
    counters = final["counters"]
    assert counters["frames_out"] >= frame_count - 1 and counters["frames_dropped"] == 0, counters
    # every output frame is its own input frame inverted: nothing injected, nothing lost
    indices = [read_frame_index(255 - frame.rgb) for frame in output.frames]
    assert indices == list(range(counters["frames_out"])), indices
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
