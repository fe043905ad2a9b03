"""Issue 13's security findings, one test per case: each failed before its fix (real ComfyUI, real relay,
everything on 127.0.0.1)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from comfy_trickle.devtools.stream_harness import SEED_PASSTHROUGH, StreamAPI
from comfy_trickle.routes.security import HostAllowlist
from comfy_trickle.trickle.address_guard import TrickleHostRefused
from comfy_trickle.trickle.subscriber import TrickleSubscriber

pytestmark = [pytest.mark.timeout(120), pytest.mark.relay(autocreate=True)]

INTERNAL_SECRET = "INTERNAL-SERVICE-ANSWER-4711"


@pytest.fixture
async def api(comfyui):
    client = StreamAPI(comfyui.base_url)
    yield client
    _, streams = await client.call("GET", "/streams")
    for stream_id, status in (streams or {}).get("streams", {}).items():
        if status["state"] in ("starting", "running"):
            await client.stop(stream_id)
    await client.close()


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
