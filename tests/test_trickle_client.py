"""Our trickle client (subscriber, publisher, JSON channels) against the dev relay over real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import pytest
from aiohttp import web
from comfy_trickle.trickle import (
    ControlReader,
    EventsWriter,
    RunningRelay,
    TrickleChannelClosed,
    TrickleChannelNotFound,
    TricklePublisher,
    TrickleSegmentError,
    TrickleSubscriber,
    serve_relay,
)
from comfy_trickle.trickle.relay_server import _bind

CHANNEL = "video"

pytestmark = [pytest.mark.timeout(60), pytest.mark.relay(channels=[(CHANNEL, "video/MP2T")])]


def body(seq: int, size: int = 64) -> bytes:
    return (f"segment-{seq:04d}|".encode() * size)[: size * 8]


# --------------------------------------------------------------------------------------------- delivery


async def test_hundred_segments_arrive_in_order_and_byte_exact(relay: RunningRelay) -> None:
    url = relay.channel_url(CHANNEL)
    received: list[tuple[int, bytes]] = []
    progress = asyncio.Condition()

    async def read() -> None:
        async with TrickleSubscriber(url, start_seq=0) as subscriber:
            async for segment in subscriber:
                received.append((segment.seq, await segment.read_all()))
                async with progress:
                    progress.notify_all()

    reader = asyncio.create_task(read())
    async with TricklePublisher(url) as publisher:
        for seq in range(100):
            # Stay inside the 5-segment window so this test is about order, not about overrun.
            async with progress:
                await progress.wait_for(lambda seq=seq: len(received) >= seq - 3)
            async with await publisher.open_segment() as segment:
                data = body(seq)
                await segment.write(data[:100])
                await segment.write(data[100:])
    await asyncio.wait_for(reader, 10)  # the publisher's DELETE ends the subscriber
    assert [seq for seq, _ in received] == list(range(100))
    assert all(data == body(seq) for seq, data in received)


async def test_chunks_are_yielded_as_they_arrive(relay: RunningRelay) -> None:
    url = relay.channel_url(CHANNEL)
    async with TricklePublisher(url) as publisher, TrickleSubscriber(url) as subscriber:
        segment = await publisher.open_segment()
        await segment.write(b"first half")
        incoming = await subscriber.next_segment()
        assert incoming is not None
        chunks = incoming.iter_chunks()
        assert await anext(chunks) == b"first half"  # before the segment is finished
        await segment.write(b"second half")
        assert await anext(chunks) == b"second half"
        await segment.close()
        assert [chunk async for chunk in chunks] == []
        assert incoming.complete


async def test_late_join_current_reads_segment_in_progress_from_byte_zero(relay: RunningRelay) -> None:
    url = relay.channel_url(CHANNEL)
    async with TricklePublisher(url) as publisher:
        await publisher.write_segment(b"zero")
        await publisher.write_segment(b"one")
        live = await publisher.open_segment()
        await live.write(b"keyframe|")
        async with TrickleSubscriber(url, start_seq=-2) as subscriber:
            segment = await subscriber.next_segment()
            assert segment is not None and segment.seq == 2
            assert await segment.read_chunk() == b"keyframe|"
            await live.write(b"rest")
            await live.close()
            assert await segment.read_all() == b"rest"
            await publisher.write_segment(b"three")
            following = await subscriber.next_segment()
            assert following is not None
            assert (following.seq, await following.read_all()) == (3, b"three")


async def test_late_join_next_waits_for_the_next_segment(relay: RunningRelay) -> None:
    url = relay.channel_url(CHANNEL)
    async with TricklePublisher(url) as publisher:
        await publisher.write_segment(b"zero")
        live = await publisher.open_segment()
        await live.write(b"middle of one")
        async with TrickleSubscriber(url, start_seq=-1) as subscriber:
            waiting = asyncio.create_task(subscriber.next_segment())
            await live.close()
            await publisher.write_segment(b"two")
            segment = await asyncio.wait_for(waiting, 5)
            assert segment is not None
            assert (segment.seq, await segment.read_all()) == (2, b"two")


async def test_470_recovery_when_subscriber_falls_behind_the_ring(relay: RunningRelay) -> None:
    url = relay.channel_url(CHANNEL)
    async with TricklePublisher(url) as publisher, TrickleSubscriber(url, start_seq=0) as subscriber:
        await publisher.write_segment(body(0))
        first = await subscriber.next_segment()
        assert first is not None and await first.read_all() == body(0)
        for seq in range(1, 13):  # the subscriber sleeps while 12 segments go by (ring of 5)
            await publisher.write_segment(body(seq))
        seqs = []
        waiting = asyncio.create_task(subscriber.next_segment())
        segment = await asyncio.wait_for(waiting, 5)
        # Segment 1 was already being fetched (preconnect) when the subscriber fell asleep.
        assert segment is not None and segment.seq == 1
        seqs.append(segment.seq)
        waiting = asyncio.create_task(subscriber.next_segment())
        await asyncio.sleep(0.05)
        await publisher.write_segment(body(13))
        segment = await asyncio.wait_for(waiting, 5)
        assert segment is not None
        assert (segment.seq, await segment.read_all()) == (13, body(13))  # jumped to Lp-Trickle-Latest


# --------------------------------------------------------------------------------------------- ending


async def test_channel_delete_is_a_clean_end_of_stream(relay: RunningRelay) -> None:
    url = relay.channel_url(CHANNEL)
    async with TricklePublisher(url) as publisher, TrickleSubscriber(url) as subscriber:
        await publisher.write_segment(b"only")
        segment = await subscriber.next_segment()
        assert segment is not None and await segment.read_all() == b"only"
        waiting = asyncio.create_task(subscriber.next_segment())
        await asyncio.sleep(0.05)
        assert relay.relay.delete_channel(CHANNEL)
        assert await asyncio.wait_for(waiting, 5) is None
        assert await subscriber.next_segment() is None
        with pytest.raises(TrickleChannelClosed):
            await publisher.write_segment(b"too late")
        with pytest.raises(TrickleChannelClosed):
            await publisher.open_segment()  # terminal


async def test_publisher_close_deletes_the_channel(relay: RunningRelay) -> None:
    url = relay.channel_url(CHANNEL)
    subscriber = TrickleSubscriber(url, start_seq=0)
    publisher = TricklePublisher(url)
    await publisher.write_segment(b"payload")
    segment = await subscriber.next_segment()
    assert segment is not None and await segment.read_all() == b"payload"
    await publisher.close()
    assert CHANNEL not in relay.relay.channels
    assert await asyncio.wait_for(subscriber.next_segment(), 5) is None
    await subscriber.close()


async def test_unknown_channel_is_reported_not_waited_on(relay: RunningRelay) -> None:
    async with TrickleSubscriber(relay.channel_url("nope")) as subscriber:
        with pytest.raises(TrickleChannelNotFound):
            await subscriber.next_segment()
    async with TricklePublisher(relay.channel_url("nope")) as publisher:
        with pytest.raises(TrickleChannelClosed):
            await publisher.write_segment(b"x")
    rejoining = TricklePublisher(relay.channel_url("nope"), rejoin=True)
    with pytest.raises(TrickleChannelNotFound):
        await rejoining.start()
    await rejoining.close()


async def test_rejoin_continues_at_next_with_reset(relay: RunningRelay) -> None:
    url = relay.channel_url(CHANNEL)
    first = TricklePublisher(url)
    for seq in range(3):
        await first.write_segment(body(seq))
    await first.close(delete_channel=False)
    async with TrickleSubscriber(url, start_seq=-1) as subscriber:
        waiting = asyncio.create_task(subscriber.next_segment())
        async with TricklePublisher(url, rejoin=True) as second:
            assert await second.write_segment(b"after restart") == 3
            segment = await asyncio.wait_for(waiting, 5)
            assert segment is not None
            assert (segment.seq, await segment.read_all()) == (3, b"after restart")


# --------------------------------------------------------------------------------------------- JSON channels


async def test_control_message_of_200_kib_arrives_whole_and_bad_json_is_skipped(relay: RunningRelay) -> None:
    relay.relay.create_channel("control", "application/json")
    url = relay.channel_url("control")
    workflow = {
        "prompt": {str(i): {"class_type": "Node", "inputs": {"text": "w" * 200}} for i in range(1000)}
    }
    encoded = json.dumps(workflow).encode()
    assert len(encoded) > 200 * 1024
    invalid: list[tuple[int, bytes]] = []
    async with TricklePublisher(url, mime_type="application/json") as writer:
        reader = ControlReader(url, start_seq=0, on_invalid=lambda seq, err, raw: invalid.append((seq, raw)))
        await writer.write_segment(b'{"keep":"alive"}')
        await writer.write_segment(b"{not json")
        async with await writer.open_segment() as segment:
            for start in range(0, len(encoded), 16 * 1024):  # many HTTP chunks
                await segment.write(encoded[start : start + 16 * 1024])
        await writer.write_segment(b'{"keep":"alive"}')
        await writer.write_segment(b'{"params": {"strength": 0.5}}')
        assert await asyncio.wait_for(reader.next_message(), 5) == workflow
        assert await asyncio.wait_for(reader.next_message(), 5) == {"params": {"strength": 0.5}}
        assert invalid == [(1, b"{not json")]
    assert await asyncio.wait_for(reader.next_message(), 5) is None  # the writer's close deleted the channel
    await reader.close()


async def test_events_writer_sends_envelopes(relay: RunningRelay) -> None:
    relay.relay.create_channel("events", "application/json")
    url = relay.channel_url("events")
    async with EventsWriter(url) as events, TrickleSubscriber(url, start_seq=0) as subscriber:
        await events.send({"type": "status", "state": "running"})
        await events.send({"type": "stream_trace"}, queue_event_type="custom")
        messages = []
        for _ in range(2):
            segment = await subscriber.next_segment()
            assert segment is not None
            messages.append(json.loads(await segment.read_all()))
    assert messages == [
        {"event": {"type": "status", "state": "running"}, "queue_event_type": "ai_stream_events"},
        {"event": {"type": "stream_trace"}, "queue_event_type": "custom"},
    ]
    assert "events" in relay.relay.channels  # the gateway's channel is left alone


# --------------------------------------------------------------------------------------------- robustness


@contextmanager
def slow_sink_server(read_delay_s: float) -> Iterator[tuple[str, dict[str, int]]]:
    """An HTTP server in its own thread that reads POST bodies slowly; yields (url, counters)."""
    counters = {"received": 0, "posts": 0}
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    sock = _bind("127.0.0.1", 0)
    # a fixed receive buffer: with Linux's autotuning (tcp_rmem max up to 32 MiB) the kernel alone could
    # hold more than the bound this test checks (accepted connections inherit the listener's size)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)

    async def sink(request: web.Request) -> web.Response:
        counters["posts"] += 1
        while chunk := await request.content.read(16 * 1024):
            counters["received"] += len(chunk)
            await asyncio.sleep(read_delay_s)
        return web.Response(status=200, headers={"Lp-Trickle-Seq": request.match_info["seq"]})

    async def serve() -> web.AppRunner:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_post("/slow/{seq}", sink)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        return runner

    runner_box: list[web.AppRunner] = []
    thread = threading.Thread(
        target=lambda: (runner_box.append(loop.run_until_complete(serve())), ready.set(), loop.run_forever()),
        daemon=True,
    )
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/slow", counters
    finally:
        asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        sock.close()


async def test_backpressure_keeps_memory_bounded_with_a_slow_server() -> None:
    total, chunk, bound = 24 * 1024 * 1024, 64 * 1024, 256 * 1024
    with slow_sink_server(read_delay_s=0.002) as (url, counters):
        publisher = TricklePublisher(url, max_pending_bytes=bound)
        segment = await publisher.open_segment()
        max_pending = max_in_flight = written = 0
        for _ in range(total // chunk):
            await segment.write(b"\x47" * chunk)
            written += chunk
            max_pending = max(max_pending, segment.pending_bytes)
            max_in_flight = max(max_in_flight, written - counters["received"])
        await segment.close()
        await publisher.close(delete_channel=False)
    assert counters["received"] == total
    assert max_pending <= bound
    # Without back-pressure the writer would finish with nearly all 24 MiB still queued; with it, only
    # the bounded queue plus socket buffers are ever ahead of the slow reader.
    assert max_in_flight < total // 3, max_in_flight


async def test_segment_is_not_retried_once_bytes_went_out() -> None:
    posts = 0

    async def drop_after_first_chunk(request: web.Request) -> web.Response:
        nonlocal posts
        posts += 1
        await request.content.readany()
        request.transport.close()  # the connection dies mid-body
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/drop/{seq}", drop_after_first_chunk)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = _bind("127.0.0.1", 0)
    await web.SockSite(runner, sock).start()
    try:
        publisher = TricklePublisher(f"http://127.0.0.1:{sock.getsockname()[1]}/drop", retry_backoff_s=0.01)
        segment = await publisher.open_segment()
        await segment.write(b"some bytes")
        with pytest.raises(TrickleSegmentError):
            await segment.close()
        assert posts == 1  # a re-POST would have appended to the same seq
        await publisher.close(delete_channel=False)
    finally:
        await runner.cleanup()
        sock.close()


async def test_segment_is_retried_while_nothing_was_sent() -> None:
    sock = _bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()  # nothing listens yet: connecting fails before any byte goes out
    publisher = TricklePublisher(f"http://127.0.0.1:{port}/{CHANNEL}", retry_backoff_s=0.1, max_retries=6)
    writing = asyncio.create_task(publisher.write_segment(b"patient"))
    await asyncio.sleep(0.3)
    assert not writing.done()
    async with serve_relay(port=port, channels=[(CHANNEL, "video/MP2T")]) as running:
        assert await asyncio.wait_for(writing, 10) == 0
        assert running.relay.channels.get(CHANNEL).next_write == 1
        await publisher.close()


async def test_close_at_any_moment_leaves_no_tasks_or_connections(relay: RunningRelay) -> None:
    url = relay.channel_url(CHANNEL)
    before = asyncio.all_tasks()
    subscriber = TrickleSubscriber(url, start_seq=0)
    publisher = TricklePublisher(url)
    segment = await publisher.open_segment()
    await segment.write(b"half a segment")
    incoming = await subscriber.next_segment()  # mid-segment, with the next GET preconnected
    assert incoming is not None and await incoming.read_chunk() == b"half a segment"
    waiting = asyncio.create_task(subscriber.next_segment())
    await asyncio.sleep(0.05)
    await subscriber.close()
    assert await waiting is None  # a concurrent next_segment() ends quietly
    await publisher.close()
    own_sessions = [subscriber._http.owned_session, publisher._http.owned_session]
    assert all(session is not None and session.closed for session in own_sessions)
    client_tasks = [
        task
        for task in asyncio.all_tasks() - before
        if "trickle/subscriber" in repr(task.get_coro())
        or "trickle/publisher" in repr(task.get_coro())
        or "aiohttp/client" in repr(task.get_coro())
    ]
    assert client_tasks == []
    for _ in range(100):  # the relay sees both connections go away
        if relay.relay.active_requests == 0:
            break
        await asyncio.sleep(0.02)
    assert relay.relay.active_requests == 0
    assert await subscriber.next_segment() is None


async def test_shared_session_is_left_open(relay: RunningRelay) -> None:
    async with aiohttp.ClientSession() as session:
        publisher = TricklePublisher(relay.channel_url(CHANNEL), session=session)
        await publisher.write_segment(b"x")
        await publisher.close(delete_channel=False)
        assert not session.closed


async def test_aborted_segment_releases_its_readers_and_the_stream_goes_on(relay: RunningRelay) -> None:
    url = relay.channel_url(CHANNEL)
    async with TricklePublisher(url) as publisher, TrickleSubscriber(url, start_seq=0) as subscriber:
        dropped = await publisher.open_segment()
        await dropped.write(b"half of a GOP")
        incoming = await subscriber.next_segment()
        assert incoming is not None and await incoming.read_chunk() == b"half of a GOP"
        await dropped.abort()  # cut the POST and DELETE the seq: the reader must not wait for more
        assert await asyncio.wait_for(incoming.read_chunk(), 5) == b""
        await publisher.write_segment(b"next GOP")
        following = await asyncio.wait_for(subscriber.next_segment(), 5)
        assert following is not None
        assert (following.seq, await following.read_all()) == (1, b"next GOP")


async def test_cancelled_next_segment_frees_a_preconnected_answer(relay: RunningRelay) -> None:
    """Regression: a next_segment() cancelled after its preconnected GET already had headers left that
    response (and its connection) open; with a shared session nothing closed it."""
    url = relay.channel_url(CHANNEL)
    async with aiohttp.ClientSession() as session:
        subscriber = TrickleSubscriber(url, start_seq=0, session=session)
        publisher = TricklePublisher(url, session=session)
        await publisher.write_segment(b"first")
        first = await subscriber.next_segment()
        assert first is not None and await first.read_all() == b"first"
        second = await publisher.open_segment()
        await second.write(b"second, still open")
        assert subscriber._pending is not None
        preconnected = subscriber._pending[1]
        await asyncio.wait_for(asyncio.shield(preconnected), 5)  # headers of seq 1 arrived
        reader = asyncio.create_task(subscriber.next_segment())
        await asyncio.sleep(0)  # the reader is waiting on the finished GET
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await subscriber.close()
        for _ in range(100):  # only the publisher's open POST is left on the relay
            if relay.relay.active_requests == 1:
                break
            await asyncio.sleep(0.02)
        assert relay.relay.active_requests == 1
        await second.close()
        await publisher.close(delete_channel=False)
