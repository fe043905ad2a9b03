"""Hosting the relay: mounted under a prefix on another aiohttp app, the changefeed, and GET refresh."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import aiohttp
import pytest
from aiohttp import web
from comfy_trickle.trickle import TricklePublisher, TrickleRelay, TrickleSubscriber, serve_relay
from comfy_trickle.trickle.relay_server import _bind

pytestmark = pytest.mark.timeout(30)


async def test_relay_mounted_under_a_prefix_on_an_existing_route_table() -> None:
    # How a host such as ComfyUI's server embeds it: routes collected on a RouteTableDef before start-up.
    routes = web.RouteTableDef()

    @routes.get("/hello")
    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="host app")

    relay = TrickleRelay(autocreate=False)
    relay.create_channel("cam", "video/MP2T")
    relay.add_routes(routes, prefix="/trickle/relay/")
    app = web.Application()
    app.add_routes(routes)
    relay.attach_lifecycle(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    sock = _bind("127.0.0.1", 0)
    await web.SockSite(runner, sock).start()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        url = base + "/trickle/relay/cam"
        async with TrickleSubscriber(url, start_seq=0) as subscriber:
            publisher = TricklePublisher(url)
            await publisher.write_segment(b"through the host")
            segment = await subscriber.next_segment()
            assert segment is not None and await segment.read_all() == b"through the host"
            waiting = asyncio.create_task(subscriber.next_segment())
            await publisher.close()  # DELETE under the prefix
            assert await asyncio.wait_for(waiting, 5) is None
        assert "cam" not in relay.channels
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/hello") as response:
                assert await response.text() == "host app"
            async with http.get(base + "/cam/0") as response:  # only under the prefix
                assert response.status == 404
    finally:
        await runner.cleanup()
        sock.close()


async def test_shutdown_of_the_host_app_ends_waiting_subscribers() -> None:
    async with serve_relay(channels=[("cam", "video/MP2T")], prefix="/trickle/relay/") as running:
        assert running.url.endswith("/trickle/relay/")
        subscriber = TrickleSubscriber(running.channel_url("cam"), start_seq=0)
        waiting = asyncio.create_task(subscriber.next_segment())
        await asyncio.sleep(0.1)
    assert await asyncio.wait_for(waiting, 5) is None  # EOS, not a hang, when the server stops
    await subscriber.close()


async def test_changefeed_reports_created_and_deleted_channels() -> None:
    async with serve_relay(changefeed=True, autocreate=True) as running:
        async with aiohttp.ClientSession() as http:
            async with http.post(running.url + "alpha", headers={"Expect-Content": "text/plain"}) as response:
                assert response.status == 200
            async with http.delete(running.url + "alpha") as response:
                assert response.status == 200
        async with TrickleSubscriber(running.channel_url("_changes"), start_seq=0) as feed:
            changes = []
            for _ in range(2):
                segment = await feed.next_segment()
                assert segment is not None
                changes.append(json.loads(await segment.read_all()))
    assert changes == [{"added": ["alpha"]}, {"removed": ["alpha"]}]


async def test_waiting_get_is_refreshed_and_still_gets_the_segment() -> None:
    relay = TrickleRelay(disconnect_poll_s=0.05)
    relay.create_channel("cam", "video/MP2T")
    gets = 0
    handle_get = relay._handle_get

    async def counting_get(request: web.Request) -> web.StreamResponse:
        nonlocal gets
        gets += 1
        return await handle_get(request)

    relay._handle_get = counting_get  # type: ignore[method-assign]
    async with serve_relay(relay) as running:
        url = running.channel_url("cam")
        async with TrickleSubscriber(url, start_seq=0, preconnect_refresh_s=0.2) as subscriber:
            waiting = asyncio.create_task(subscriber.next_segment())
            await asyncio.sleep(0.9)
            assert gets >= 3  # re-issued about every 0.2 s while nothing is published
            for _ in range(50):  # the abandoned GETs are freed on the relay
                if relay.active_requests <= 1:
                    break
                await asyncio.sleep(0.02)
            assert relay.active_requests <= 1
            relay.write_segment("cam", b"finally")
            segment = await asyncio.wait_for(waiting, 5)
            assert segment is not None
            assert (segment.seq, await segment.read_all()) == (0, b"finally")


async def test_port_in_use_fails_without_leaving_a_sweeper_running() -> None:
    """Regression: the app started (and its sweeper task with it) before the bind that then failed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        relay = TrickleRelay()
        with pytest.raises(OSError):
            async with serve_relay(relay, port=taken.getsockname()[1]):
                pass
    sweepers = [task for task in asyncio.all_tasks() if "_sweep_loop" in repr(task.get_coro())]
    assert sweepers == []


async def test_a_subscriber_leaving_as_its_segment_ends_logs_no_traceback(caplog) -> None:
    """The relay's last write to a subscriber that just left (the end-of-body marker) is an expected race:
    it used to escape as aiohttp's 'Error handling request' traceback (bench/soak.py logged eight)."""
    relay = TrickleRelay(disconnect_poll_s=30.0)  # the GET must not notice the leave by polling
    relay.create_channel("cam", "video/MP2T")
    more = asyncio.Event()

    async def body():
        yield b"first bytes"
        await more.wait()  # then the segment ends with no more bytes: the relay only writes the end marker

    async with serve_relay(relay) as running, aiohttp.ClientSession() as http:
        url = running.channel_url("cam")
        posting = asyncio.create_task(http.post(f"{url}/0", data=body()))
        response = await http.get(f"{url}/0")
        assert await response.content.readexactly(len(b"first bytes")) == b"first bytes"
        response.connection.transport.abort()  # the subscriber goes away mid-segment
        response.release()
        await asyncio.sleep(0.1)
        with caplog.at_level(logging.DEBUG):
            more.set()  # the segment ends: the relay writes its end marker to nobody
            assert (await asyncio.wait_for(posting, 5)).status == 200
            await asyncio.sleep(0.2)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
