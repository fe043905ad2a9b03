"""The collector freeze that keeps ComfyUI's periodic full GC short while streams run (streams/gc_pause.py,
added after bench/run.py showed a 630 ms stall every 10 s). Checks what a user would notice: objects of
the process are skipped by collections while a stream runs, and garbage made meanwhile is still
collected once the last stream ends."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest
from comfy_trickle.streams.bridge import BridgeDirectory
from comfy_trickle.streams.config import StreamConfig
from comfy_trickle.streams.gc_pause import CollectorFreeze
from comfy_trickle.streams.heap import CoalescedRelease
from comfy_trickle.streams.registry import StreamRegistry
from engine_fakes import FakeEgress, FakeIngest, FakeRunner, frame_of

pytestmark = pytest.mark.timeout(30)


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture(autouse=True)
def _unfrozen_afterwards():
    yield
    gc.unfreeze()


def test_garbage_made_while_frozen_is_collected_after_the_last_release():
    freeze = CollectorFreeze()
    cyclic = Node()
    alive = weakref.ref(cyclic)
    freeze.hold("stream-a")
    freeze.hold("stream-b")
    assert gc.get_freeze_count() > 0
    del cyclic
    gc.collect()
    assert alive() is not None  # frozen: a full collection does not even look at it
    freeze.release("stream-a")
    freeze.release("unknown")  # ignored
    gc.collect()
    assert alive() is not None  # stream-b still runs
    freeze.release("stream-b")
    assert gc.get_freeze_count() == 0 and not freeze.frozen
    gc.collect()
    assert alive() is None


async def test_registry_freezes_while_a_stream_runs_and_unfreezes_when_it_ends():
    bridges = BridgeDirectory()
    runner = FakeRunner(bridges)
    freeze = CollectorFreeze()
    ingest = FakeIngest([frame_of(i) for i in range(3)], end=False)
    registry = StreamRegistry(
        runner, max_streams=1, media_factory=lambda config: (ingest, FakeEgress()), bridges=bridges,
        gc_freeze=freeze,
    )  # fmt: skip
    config = StreamConfig(
        stream_id="s1", subscribe_url="http://127.0.0.1:1/in", publish_url="http://127.0.0.1:1/out",
        workflow={"1": {"inputs": {"images": ["2", 0]}, "class_type": "SaveTensor"},
                  "2": {"inputs": {}, "class_type": "LoadTensor"}},
        width=64, height=64,
    )  # fmt: skip
    try:
        await registry.start(config)
        assert freeze.frozen and gc.get_freeze_count() > 0
        final = await registry.stop("s1")
        assert final["state"] == "stopped"
        assert not freeze.frozen and gc.get_freeze_count() == 0
    finally:
        runner.close()


def test_streams_ending_together_get_one_collection_at_a_time_and_none_is_lost():
    """Eight requests while a release runs fold into exactly one more run after it; later ones start anew."""
    started, proceed = threading.Event(), threading.Event()
    concurrent, most = [0], [0]
    lock = threading.Lock()

    def slow_release() -> None:
        with lock:
            concurrent[0] += 1
            most[0] = max(most[0], concurrent[0])
        started.set()
        proceed.wait(5)
        with lock:
            concurrent[0] -= 1

    release = CoalescedRelease(slow_release)
    assert release.request()
    worker = threading.Thread(target=release.run)
    worker.start()
    assert started.wait(5)
    assert [release.request() for _ in range(8)] == [False] * 8  # folded into the running one
    proceed.set()
    worker.join(5)
    assert release.runs == 2 and most[0] == 1
    assert release.request()  # idle again: the next stream's end starts a release of its own
    release.run()
    assert release.runs == 3
