"""host.queue_updates against a fake server: while streams queue a prompt per frame, browsers get at
most one queue `status` broadcast per interval, and the last one always reports the newest queue."""

from __future__ import annotations

from comfy_trickle.host.queue_updates import QUEUE_STATUS_INTERVAL_S, coalesce_queue_updates
from host_fakes import FakeClock, FakeServer


def throttled_server() -> tuple[FakeServer, FakeClock]:
    server, clock = FakeServer(), FakeClock()
    coalesce_queue_updates(server, clock=clock)
    return server, clock


def test_a_lone_update_is_broadcast_at_once():
    server, _clock = throttled_server()
    server.prompt_queue.put((0, "p0", {}, {}, [], {}))
    server.queue_updated()
    assert server.broadcast_sizes == [1] and server.loop.later == []


def test_a_burst_sends_one_broadcast_now_and_one_trailing_with_the_latest_queue():
    server, clock = throttled_server()
    server.queue_updated()
    for number in range(30):  # a second of frames, all within one interval
        clock.now += 0.001
        server.prompt_queue.put((number, f"p{number}", {}, {}, [], {}))
        server.queue_updated()
    assert server.broadcast_sizes == [0]
    ((delay, _flush),) = server.loop.later  # exactly one deferred broadcast
    assert 0 < delay <= QUEUE_STATUS_INTERVAL_S
    clock.now += delay
    server.loop.run_later()
    assert server.broadcast_sizes == [0, 30]  # the trailing broadcast reports the queue as it is now


def test_after_a_quiet_interval_the_next_update_goes_out_at_once_again():
    server, clock = throttled_server()
    server.queue_updated()
    clock.now += QUEUE_STATUS_INTERVAL_S / 2
    server.queue_updated()
    clock.now += QUEUE_STATUS_INTERVAL_S / 2
    server.loop.run_later()
    assert len(server.broadcast_sizes) == 2
    clock.now += QUEUE_STATUS_INTERVAL_S
    server.queue_updated()
    assert len(server.broadcast_sizes) == 3 and server.loop.later == []


def test_only_the_given_server_instance_is_throttled():
    server, _clock = throttled_server()
    untouched = FakeServer()
    untouched.queue_updated()
    untouched.queue_updated()
    assert untouched.broadcast_sizes == [0, 0]
    assert "queue_updated" in vars(server) and "queue_updated" not in vars(untouched)
