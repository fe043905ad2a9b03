"""Unit tests of the stream engine's pure logic with fakes (see engine_fakes): hand-off, counters,
workflow mapping, pump outcomes, session lifecycle, registry errors. The real thing is in
test_engine_comfyui.py."""

from __future__ import annotations

import asyncio
import threading
import time
from fractions import Fraction

import numpy as np
import pytest
from comfy_trickle.media.decoder import decode_bytes
from comfy_trickle.media.synthetic import SyntheticConfig, SyntheticSource, read_frame_index
from comfy_trickle.streams.bridge import BridgeDirectory, FrameBridge
from comfy_trickle.streams.config import StreamConfig
from comfy_trickle.streams.counters import FPS_MAX_FRAMES, STAGE_SAMPLES, FrameRateMeter, StreamCounters
from comfy_trickle.streams.errors import (
    StreamAccessDenied,
    StreamExists,
    StreamLimitReached,
    StreamNotBound,
    StreamNotFound,
    WorkflowInvalid,
)
from comfy_trickle.streams.handoff import FrameHandoff, InputFrame
from comfy_trickle.streams.registry import KEEP_FINISHED, StreamRegistry
from comfy_trickle.streams.stages import FrameStamps, Stage
from comfy_trickle.streams.trickle_io import TrickleEgress, encoder_threads
from comfy_trickle.streams.workflow import PromptBuilder, prepare_workflow
from engine_fakes import FakeEgress, FakeIngest, FakeRunner, frame_of

# the status's stage_ms keys, in this order (a contract with bench/ and the UI)
STAGE_KEYS = ["decode", "handoff_wait", "executor_queue", "workflow", "encode", "publish"]

SEED_WORKFLOW = {
    "1": {"inputs": {"images": ["2", 0]}, "class_type": "SaveTensor"},
    "2": {"inputs": {}, "class_type": "LoadTensor"},
}


def make_config(stream_id: str, workflow: dict | None = None, **params) -> StreamConfig:
    return StreamConfig(
        params=params,
        stream_id=stream_id,
        subscribe_url="http://127.0.0.1:1/in",
        publish_url="http://127.0.0.1:1/out",
        workflow=workflow or SEED_WORKFLOW,
        width=64,
        height=64,
    )


def input_frame(index: int, media_time: float, arrival: float | None = None) -> InputFrame:
    """A frame decoded at ``arrival`` (default: now, so frames made together arrive as one burst)."""
    return InputFrame(index=index, picture=None, pts=index, time_base=None, media_time=media_time,
                      arrival=time.monotonic() if arrival is None else arrival)


@pytest.fixture
def engine():
    bridges = BridgeDirectory()
    runner = FakeRunner(bridges)
    media: dict[str, tuple[FakeIngest, FakeEgress]] = {}
    frames: dict[str, list] = {}

    def factory(config):
        ingest = FakeIngest(frames.get(config.stream_id, [frame_of(i) for i in range(20)]))
        egress = FakeEgress()
        media[config.stream_id] = (ingest, egress)
        return ingest, egress

    registry = StreamRegistry(runner, max_streams=2, media_factory=factory, bridges=bridges)
    yield registry, runner, media, frames
    runner.close()


# --- hand-off -----------------------------------------------------------------------------------------------
async def test_handoff_keeps_bursts_and_drops_only_beyond_the_backlog_bound():
    handoff = FrameHandoff(asyncio.get_running_loop(), max_backlog_s=0.5)
    for i in range(10):  # a burst: 10 frames, 0.1 s apart = 0.9 s of video
        handoff.put(input_frame(i, i * 0.1))
    handoff.end()
    got = []
    while (frame := await handoff.get()) is not None:
        got.append(frame.index)
    assert got == [4, 5, 6, 7, 8, 9]  # oldest dropped until <= 0.5 s remained
    assert handoff.dropped == 4


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def serve(handoff: FrameHandoff, clock: FakeClock, arrivals: list[tuple[float, float]], service_s: float,
          *, until: float) -> list[tuple[float, int, int]]:
    """A consumer that needs ``service_s`` per frame, on a fake timeline: frame i (media time, arrival)
    is put at its arrival; each prompt asks ``fresher`` as it starts, like ``TrickleInput``. Returns
    (start time, served frame index, newest frame put by then) per prompt."""
    put = 0
    served = []

    def feed() -> None:
        nonlocal put
        while put < len(arrivals) and arrivals[put][1] <= clock.now:
            handoff.put(input_frame(put, *arrivals[put]))
            put += 1

    while clock.now < until:
        feed()
        frame = handoff.take_nowait()
        if frame is None:
            handoff.consumer_idle()  # (FrameHandoff.get, before it waits)
            clock.now = arrivals[put][1] if put < len(arrivals) else until
            continue
        frame = handoff.fresher(frame)  # the prompt starts
        assert frame is not None  # (withdrawn only behind a frame queued ahead: none here)
        served.append((clock.now, frame.index, put - 1))
        clock.now += service_s
    return served


def paced(fps: float, seconds: float) -> list[tuple[float, float]]:
    """A live input: each frame arrives at its media time."""
    return [(i / fps, i / fps) for i in range(int(fps * seconds))]


def segments(fps: float, seconds: int) -> list[tuple[float, float]]:
    """Whole 1 s segments, each arriving at once when it is complete (a relay handing over a segment)."""
    return [(i / fps, float(i // int(fps) + 1)) for i in range(int(fps * seconds))]


async def test_handoff_serves_whole_segment_bursts_in_order_and_loses_nothing_when_the_executor_keeps_up():
    clock = FakeClock()
    handoff = FrameHandoff(asyncio.get_running_loop(), max_backlog_s=1.5, clock=clock)
    served = serve(handoff, clock, segments(30, 4), service_s=0.03, until=6.0)  # 33 fps for 30 fps
    assert [index for _, index, _ in served] == list(range(120))
    assert handoff.dropped == 0 and not handoff.newest_first


async def test_handoff_serves_the_newest_frame_under_sustained_overload():
    clock = FakeClock()
    handoff = FrameHandoff(asyncio.get_running_loop(), max_backlog_s=1.0, clock=clock)
    served = serve(handoff, clock, paced(30, 6), service_s=0.06, until=6.0)  # a 60 ms workflow, 30 fps in
    settled = [(at, index, newest) for at, index, newest in served if at > 0.5]
    # every prompt after the first half second runs the newest frame there is: none waits behind it
    assert settled and all(index == newest for _, index, newest in settled), settled[:8]
    assert handoff.newest_first
    # at the workflow's own rate: one prompt per 60 ms, the frames in between dropped
    assert 99 <= len(served) <= 101 and handoff.dropped + len(served) + len(handoff) == 180


async def test_handoff_goes_back_to_oldest_first_once_the_executor_keeps_up_again():
    clock = FakeClock()
    handoff = FrameHandoff(asyncio.get_running_loop(), max_backlog_s=1.0, clock=clock)
    arrivals = paced(30, 6)
    serve(handoff, clock, arrivals[:60], service_s=0.06, until=2.0)
    assert handoff.newest_first
    dropped = handoff.dropped
    later = [(media, arrival) for media, arrival in arrivals[60:]]
    served = serve(handoff, clock, later, service_s=0.01, until=6.0)  # a lighter workflow now
    # (the frames waiting as it changed: the older of them dropped once, then none)
    assert not handoff.newest_first and handoff.dropped <= dropped + 1
    assert len(served) >= len(later) - 1


async def test_handoff_never_lets_a_prompt_run_a_frame_older_than_one_its_stream_already_ran():
    clock = FakeClock()
    handoff = FrameHandoff(asyncio.get_running_loop(), clock=clock)
    frames = [input_frame(i, i / 30, arrival=i / 30) for i in range(9)]
    for frame in frames[:5]:
        handoff.put(frame)
    clock.now = 1.0  # far behind the input: overloaded
    current = handoff.take_nowait()
    assert current is frames[4] and handoff.newest_first  # the newest, 0..3 dropped
    handoff.put(frames[5])
    handoff.put(frames[6])
    ahead = handoff.take_nowait()  # queued behind it: the newest again
    assert ahead is frames[6]
    handoff.put(frames[7])
    assert handoff.fresher(current) is frames[7]  # its prompt starts: 7 runs instead of 4
    assert handoff.fresher(ahead) is None  # 6 after 7 would go back in time: withdrawn
    handoff.put(frames[8])
    following = handoff.take_nowait()
    assert following is frames[8] and handoff.fresher(following) is following  # nothing newer: itself
    assert handoff.dropped == 4 + 1 + 1  # 0..3, 5, 4 (swapped out); 6 is the withdrawn prompt's to count


async def test_frames_dropped_under_overload_are_never_converted_to_rgb():
    source = SyntheticSource(SyntheticConfig(width=64, height=64, fps=30, audio=None))
    decoded, _, _ = decode_bytes([segment.data for segment in source.segments(30)])
    clock = FakeClock()
    handoff = FrameHandoff(asyncio.get_running_loop(), clock=clock)
    for frame in decoded:  # a live input: each frame arrived at its media time
        handoff.put(InputFrame(index=frame.index, picture=frame.picture, pts=frame.pts,
                               time_base=frame.time_base, media_time=frame.time, arrival=frame.time))
    clock.now = 2.0  # a second after the last one was due: a standing queue
    served = handoff.take_nowait()
    assert served is not None and read_frame_index(served.image) == 29  # the newest, converted when used
    assert [frame.picture.converted for frame in decoded] == [False] * 29 + [True]


async def test_handoff_a_restarted_timeline_is_not_taken_for_a_standing_queue():
    clock = FakeClock()
    handoff = FrameHandoff(asyncio.get_running_loop(), clock=clock)
    first = paced(30, 2)
    again = [(media, arrival + 2.0) for media, arrival in paced(30, 2)]  # pts start at 0 again
    served = serve(handoff, clock, first + again, service_s=0.02, until=4.5)
    assert len(served) == 120 and handoff.dropped == 0


async def test_handoff_says_when_a_frame_comes_to_wait_and_when_none_waits_any_more():
    handoff = FrameHandoff(asyncio.get_running_loop())
    said: list[bool] = []
    handoff.watch_ready(said.append)
    handoff.put(input_frame(0, 0.0))
    handoff.put(input_frame(1, 0.04))  # (still waiting: nothing new to say)
    handoff.take_nowait()
    handoff.take_nowait()
    handoff.put(input_frame(2, 0.08))
    handoff.close()
    assert said == [False, True, False, True, False]


async def test_handoff_close_wakes_a_waiting_consumer_and_refuses_frames():
    handoff = FrameHandoff(asyncio.get_running_loop())
    waiter = asyncio.create_task(handoff.get())
    await asyncio.sleep(0.01)
    handoff.close()
    assert await asyncio.wait_for(waiter, 1) is None
    assert handoff.put(input_frame(0, 0.0)) is False


class WakeCounter:
    """A loop's ``call_soon_threadsafe`` (each call a wake-up through the loop's self-pipe), counting the
    calls that set an ``asyncio.Event`` (the hand-off's; ``to_thread`` uses it too, for its result)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.calls = 0
        self._real = loop.call_soon_threadsafe

    def __call__(self, callback, *args):
        self.calls += isinstance(getattr(callback, "__self__", None), asyncio.Event)
        return self._real(callback, *args)


async def put_from_thread(handoff: FrameHandoff, *frames: InputFrame) -> None:
    await asyncio.to_thread(lambda: [handoff.put(frame) for frame in frames])


async def test_handoff_wakes_a_waiting_consumer_once_and_a_busy_one_not_at_all(monkeypatch):
    loop = asyncio.get_running_loop()
    wakes = WakeCounter(loop)
    monkeypatch.setattr(loop, "call_soon_threadsafe", wakes)
    handoff = FrameHandoff(loop, max_lateness_s=lambda: 120.0)
    # the decoder's thread puts frames while the consumer is busy (no get under way): no wake-up
    await put_from_thread(handoff, *(input_frame(i, i / 30) for i in range(5)))
    assert wakes.calls == 0
    assert [handoff.take_nowait().index for _ in range(5)] == [0, 1, 2, 3, 4]
    # the consumer waits: the first frame wakes it, the frames after it while the wake-up is on its way
    # need none
    waiter = asyncio.create_task(handoff.get())
    await asyncio.sleep(0.01)
    await put_from_thread(handoff, *(input_frame(i, i / 30) for i in range(5, 8)))
    assert (await asyncio.wait_for(waiter, 1)).index == 5
    assert wakes.calls == 1


async def test_handoff_a_cancelled_wait_does_not_take_the_next_waits_wake_up():
    """The pump's look-ahead wait is cancelled when its prompt's output comes, and the pump waits again
    in the same step: the cancelled wait ends only after the new one began, and must leave it its wake-up."""
    loop = asyncio.get_running_loop()
    handoff = FrameHandoff(loop)
    look_ahead = asyncio.ensure_future(handoff.wait_for_frame())
    await asyncio.sleep(0.01)
    look_ahead.cancel()  # (its CancelledError is delivered on a later loop iteration)
    threading.Timer(0.05, lambda: handoff.put(input_frame(0, 0.0))).start()  # the decoder's thread
    guard = loop.call_later(2.0, handoff.close)  # a lost wake-up: get returns None instead of hanging
    frame = await handoff.get()  # waits before look_ahead has ended
    guard.cancel()
    assert look_ahead.cancelled()
    assert frame is not None and frame.index == 0


async def test_handoff_gives_a_batch_the_waiting_frames_of_its_size_only():
    handoff = FrameHandoff(asyncio.get_running_loop(), max_backlog_s=0.25)
    sized = [input_frame(i, i * 0.1) for i in range(6)]
    for frame in sized:
        frame.picture = np.zeros((4, 4, 3) if frame.index < 5 else (8, 8, 3), np.uint8)  # 5: after a resize
        handoff.put(frame)
    lead = handoff.take_nowait()  # drops 0..2 (over 0.25 s of backlog): 3 is the oldest left
    assert lead is not None and lead.index == 3 and handoff.dropped == 3
    followers = handoff.take_following(3, lead)
    assert [frame.index for frame in followers] == [4]  # 5 has another size: it waits for its own prompt
    assert handoff.take_nowait() is sized[5]


def test_egress_places_a_batchs_images_at_their_own_frames_pts_or_spreads_them_over_the_batch():
    egress = TrickleEgress("http://127.0.0.1:9/out")
    batch = tuple(input_frame(i, 0.0) for i in range(4))
    # 6000 between the 2nd and 3rd: a frame is missing
    for frame, pts in zip(batch, (0, 3000, 9000, 12000), strict=True):
        frame.pts, frame.time_base = pts, Fraction(1, 90000)
    egress._input_step = 3000
    # one image per frame: each at its own frame's pts, standing for that frame
    assert [egress._place(batch, i, 4) for i in range(4)] == [(f, f.pts) for f in batch]
    # one image: the first frame's; eight: evenly over the batch's 15000 ticks (12000 + one frame)
    assert egress._place(batch, 0, 1) == (batch[0], 0)
    placed = [egress._place(batch, i, 8) for i in range(8)]
    assert [pts for _, pts in placed] == [i * 1875 for i in range(8)]
    assert [frame.index for frame, _ in placed] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_egress_bounds_its_queue_in_frames_so_batches_cannot_multiply_its_memory():
    egress = TrickleEgress("http://127.0.0.1:9/out", queue_frames=8)  # (not started: nothing takes frames)

    def batch(size: int) -> InputFrame:
        lead = input_frame(0, 0.0)
        lead.followers = tuple(input_frame(i, 0.0) for i in range(1, size))
        return lead

    assert egress.submit(batch(4), None) and egress.submit(batch(3), None)
    assert not egress.submit(batch(2), None)  # 7 + 2 frames > 8
    assert egress.submit(batch(1), None)
    assert not egress.submit(batch(1), None)
    assert TrickleEgress("http://127.0.0.1:9/out", queue_frames=8).submit(batch(16), None)  # alone: taken


def test_counters_latency_percentiles_and_drops():
    now = [100.0]
    counters = StreamCounters(clock=lambda: now[0])
    counters.add_drop_source(lambda: 3)
    for i in range(100):
        counters.frame_in()
        counters.frame_out(arrival=now[0] - (i + 1) / 1000.0)  # 1..100 ms
    counters.frame_dropped(2)
    snap = counters.snapshot()
    assert snap["frames_in"] == 100 and snap["frames_out"] == 100
    assert snap["frames_dropped"] == 5
    assert snap["latency_ms"]["p50"] == pytest.approx(50.0, abs=1.5)
    assert snap["latency_ms"]["p95"] == pytest.approx(95.0, abs=1.5)


def test_counters_stage_times_over_a_bounded_recent_window():
    counters = StreamCounters()
    assert counters.snapshot()["stage_ms"]["encode"] == {"mean": None, "p50": None, "p95": None}
    for ms in range(1, 101):
        counters.stage(Stage.ENCODE, ms / 1000.0)
    encode = counters.snapshot()["stage_ms"]["encode"]
    assert encode["mean"] == pytest.approx(50.5)
    assert encode["p50"] == pytest.approx(50.0, abs=1.0) and encode["p95"] == pytest.approx(95.0, abs=1.0)
    for _ in range(STAGE_SAMPLES):  # newer frames push the old ones out of the window
        counters.stage(Stage.ENCODE, 0.002)
    assert counters.snapshot()["stage_ms"]["encode"] == {"mean": 2.0, "p50": 2.0, "p95": 2.0}
    assert list(counters.snapshot()["stage_ms"]) == STAGE_KEYS


def test_a_misspelt_stage_or_stamp_fails_where_it_is_written():
    counters = StreamCounters()
    with pytest.raises(KeyError):
        counters.stage("encdoe", 1.0)  # type: ignore[arg-type] - a string is not a Stage
    with pytest.raises(AttributeError):
        counters.stage(Stage.ENCDOE, 1.0)  # type: ignore[attr-defined]
    stamps = FrameStamps()
    with pytest.raises(AttributeError):
        stamps.input_startd = 1.0  # type: ignore[attr-defined]
    assert all(summary["mean"] is None for summary in counters.snapshot()["stage_ms"].values())


def test_fps_in_is_steady_when_a_30_fps_source_arrives_in_segment_bursts():
    now = [0.0]
    counters = StreamCounters(clock=lambda: now[0])
    samples = []
    frame = 0
    for second in range(1, 13):  # 1 s trickle segments: 30 frames land within 30 ms once a second
        for tick in range(10):
            now[0] = second + tick / 10
            if tick == 0:
                for _ in range(30):
                    counters.frame_in(media_time=frame / 30)
                    frame += 1
                    now[0] += 0.001
            if second >= 2:
                samples.append(counters.snapshot()["fps_in"])
    assert len(samples) == 110
    assert min(samples) >= 28.5 and max(samples) <= 31.5, (min(samples), max(samples))
    now[0] += 3.5  # the input stalls
    assert counters.snapshot()["fps_in"] == 0.0


def test_fps_meter_memory_stays_bounded_when_a_source_repeats_one_timestamp():
    now = [0.0]
    meter = FrameRateMeter(clock=lambda: now[0])
    for index in range(FPS_MAX_FRAMES * 3):  # a broken source stamping every frame with pts 0
        now[0] = index / 30
        meter.tick(media_time=0.0)
    assert len(meter._frames) == FPS_MAX_FRAMES


def test_fps_out_reads_the_real_rate_of_a_workflow_slower_than_real_time():
    now = [0.0]
    with_drops = StreamCounters(clock=lambda: now[0])
    for index in range(300):  # 30 fps video, every third frame dropped by the hand-off: 20 fps out
        now[0] = index / 30
        if index % 3 != 2:
            with_drops.frame_out(arrival=None, media_time=index / 30)
    assert with_drops.snapshot()["fps_out"] == pytest.approx(20.0, abs=1.0)
    behind = StreamCounters(clock=lambda: now[0])
    for index in range(300):  # every frame of a 30 fps video, written at 15 a second (a long backlog)
        now[0] = index / 15
        behind.frame_out(arrival=None, media_time=index / 30)
    assert behind.snapshot()["fps_out"] == pytest.approx(15.0, abs=1.0)

# --- workflow -----------------------------------------------------------------------------------------------
def test_comfystream_nodes_are_mapped_without_touching_the_users_workflow():
    live = prepare_workflow(SEED_WORKFLOW)
    assert live.nodes["2"]["class_type"] == "TrickleInput"
    assert live.nodes["1"]["class_type"] == "TrickleOutput"
    assert live.mapped == {"2": "LoadTensor", "1": "SaveTensor"}
    assert SEED_WORKFLOW["2"]["class_type"] == "LoadTensor"
    prompt = PromptBuilder(live, "ct9_", "s").build(42)
    assert prompt["ct9_1"]["inputs"]["images"] == ["ct9_2", 0]
    assert prompt["ct9_2"]["inputs"]["frame_ticket"] == 42
    assert prompt["ct9_1"]["inputs"]["stream_id"] == "s"


@pytest.mark.parametrize(
    ("workflow", "needle"),
    [
        ({"1": {"class_type": "ImageInvert", "inputs": {}}}, "no live input"),
        ({"2": {"class_type": "LoadTensor", "inputs": {}}}, "no live output"),
    ],
)
def test_workflow_without_live_nodes_is_invalid(workflow, needle):
    with pytest.raises(WorkflowInvalid, match=needle):
        prepare_workflow(workflow)


def test_second_live_output_is_named_in_node_errors():
    workflow = dict(SEED_WORKFLOW, **{"3": {"class_type": "TrickleOutput", "inputs": {"images": ["2", 0]}}})
    with pytest.raises(WorkflowInvalid) as info:
        prepare_workflow(workflow)
    assert info.value.node_errors["3"]["class_type"] == "TrickleOutput"
    assert info.value.http_status == 400


# --- sessions through the registry --------------------------------------------------------------------------
async def test_stream_runs_every_frame_in_order_then_completes(engine):
    registry, runner, media, _ = engine
    status = await registry.start(make_config("a"))
    assert status["state"] == "running"
    session = registry.session("a")
    assert await session.wait_finished(10)
    ingest, egress = media["a"]
    assert [w[0] for w in egress.written] == [255 - i for i in range(20)]  # inverted, in order
    assert [w[1] for w in egress.written] == [i * 3000 for i in range(20)]  # input pts kept
    final = registry.status("a")
    assert final["state"] == "completed"
    assert final["counters"]["frames_in"] == 20 and final["counters"]["frames_out"] == 20
    assert egress.finished and egress.closed and ingest.closed.is_set()
    assert runner.history == {}  # every prompt forgotten
    assert runner.bridges.lookup("a") is None


async def test_status_breaks_each_frame_down_into_stage_times(engine):
    registry, runner, media, _ = engine
    for value in range(20):
        runner.slow_on[value] = 0.02  # the "workflow" (between TrickleInput and TrickleOutput) takes 20 ms
    await registry.start(make_config("a"))
    assert await registry.session("a").wait_finished(10)
    stages = registry.status("a")["counters"]["stage_ms"]
    assert list(stages) == STAGE_KEYS
    for name, summary in stages.items():
        assert set(summary) == {"mean", "p50", "p95"}, name
        assert all(isinstance(v, float) and v >= 0.0 for v in summary.values()), (name, summary)
        assert summary["p50"] <= summary["p95"], name
    assert stages["decode"]["mean"] == pytest.approx(1.0)  # as the (fake) decoder reported each frame
    assert 20.0 <= stages["workflow"]["p50"] < 200.0
    assert stages["executor_queue"]["p50"] < stages["workflow"]["p50"]


async def test_node_error_puts_stream_in_error_with_node_and_message(engine):
    registry, runner, media, _ = engine
    runner.fail_on[5] = ("ct1_7", "Boom", "frame five broke")
    await registry.start(make_config("a"))
    assert await registry.session("a").wait_finished(10)
    status = registry.status("a")
    assert status["state"] == "error"
    assert status["error"] == {"node_id": "7", "node_type": "Boom", "message": "frame five broke"}
    assert len(media["a"][1].written) == 5
    assert media["a"][1].closed


async def test_a_backlogged_stream_keeps_one_prompt_waiting_behind_the_running_one(engine):
    registry, runner, media, frames = engine
    frames["a"] = [frame_of(i) for i in range(10)]  # all decoded long before the prompts finish
    runner.slow_on.update(dict.fromkeys(range(10), 0.1))
    await registry.start(make_config("a", max_lateness_s=60.0))  # (slower than the frame rate: keep them all)
    assert await registry.session("a").wait_finished(10)
    assert registry.status("a")["state"] == "completed"
    assert [w[0] for w in media["a"][1].written] == [255 - i for i in range(10)]  # in order, none lost
    # the executor found the next frame's prompt already queued as each one ended (the first frames may
    # be slower on a loaded machine), and never more than one
    assert sum(runner.successor_queued[:-1]) >= 7, runner.successor_queued
    assert max(runner.waiting_when_started) <= 1, runner.waiting_when_started


async def test_the_frame_queued_behind_a_failing_prompt_never_runs(engine):
    registry, runner, media, frames = engine
    frames["a"] = [frame_of(i) for i in range(10)]
    runner.slow_on.update(dict.fromkeys(range(10), 0.05))
    runner.fail_on[3] = ("ct1_7", "Boom", "frame three broke")
    await registry.start(make_config("a"))
    assert await registry.session("a").wait_finished(10)
    status = registry.status("a")
    assert status["state"] == "error" and status["error"]["message"] == "frame three broke"
    assert runner.successor_queued[3] is True  # frame 4 was waiting behind frame 3 ...
    assert runner.inputs_taken == [0, 1, 2, 3]  # ... and never reached its input node
    assert [w[0] for w in media["a"][1].written] == [255, 254, 253]


def test_bridge_asks_a_tickets_withdraw_check_once_after_the_access_check():
    bridge = FrameBridge("s", lambda *args: None)
    asked = []
    keep = bridge.open_ticket(input_frame(1, 0.0), lambda: asked.append("keep") or False)
    drop = bridge.open_ticket(input_frame(2, 0.0), lambda: asked.append("drop") or True)
    with pytest.raises(StreamAccessDenied):  # a prompt without the secret learns nothing, asks nothing
        bridge.input_frame(drop, 0.1, "guess")
    assert asked == []
    assert bridge.input_frame(keep, 0.1, bridge.ticket_secret(keep)).index == 1
    assert bridge.input_frame(keep, 0.1, bridge.ticket_secret(keep)).index == 1  # asked once only
    secret = bridge.ticket_secret(drop)
    with pytest.raises(StreamNotBound, match=f"Frame {drop} of stream 's' was withdrawn"):
        bridge.input_frame(drop, 30.0, secret)
    assert asked == ["keep", "drop"]
    assert bridge.deliver(drop, "x", secret) is False  # nothing of a withdrawn frame goes out


async def test_interrupted_frame_is_dropped_and_stream_goes_on(engine):
    registry, runner, media, _ = engine
    runner.interrupt_on.add(3)
    await registry.start(make_config("a"))
    assert await registry.session("a").wait_finished(10)
    status = registry.status("a")
    assert status["state"] == "completed"
    assert [w[0] for w in media["a"][1].written] == [255 - i for i in range(20) if i != 3]
    assert status["counters"]["frames_dropped"] == 1


async def test_a_first_frame_slower_than_its_timeout_ends_the_stream_in_error_saying_so(engine):
    registry, runner, media, frames = engine
    runner.slow_on[0] = 3.0  # the first prompt outlasts the 1 s first-frame timeout
    frames["a"] = [frame_of(i) for i in range(10)]
    await registry.start(make_config("a", first_frame_timeout_s=1))
    await asyncio.sleep(0.6)
    warming = registry.status("a")
    assert warming["state"] == "running" and warming["warm_up"]["timeout_s"] == 1, warming
    assert 0 < warming["warm_up"]["waited_s"] < 1, warming
    assert await registry.session("a").wait_finished(5)
    final = registry.status("a")
    assert final["state"] == "error", final
    message = final["error"]["message"]
    assert "no frame within 1 s" in message and "first_frame_timeout_s" in message, message
    covered = final["counters"]["frames_covered"]
    assert covered > 0 and f"{covered} input frame(s) went out marked" in message, final
    assert final["counters"]["frames_processed"] == 0 and final["warm_up"] is None


async def test_prompts_that_keep_skipping_the_output_node_end_the_stream_in_error(engine):
    registry, runner, media, _ = engine
    runner.skip_output_on.update(range(20))
    await registry.start(make_config("a"))
    assert await registry.session("a").wait_finished(10)
    final = registry.status("a")
    assert final["state"] == "error", final
    assert "3 prompts in a row finished without running TrickleOutput" in final["error"]["message"], final
    assert final["counters"]["frames_out"] == 0 and runner.inputs_taken[:3] == [0, 1, 2], final


async def test_a_prompt_now_and_then_without_output_only_drops_its_frame(engine):
    registry, runner, media, _ = engine
    runner.skip_output_on.update({2, 3, 7, 8, 12})  # never 3 in a row
    await registry.start(make_config("a"))
    assert await registry.session("a").wait_finished(10)
    final = registry.status("a")
    assert final["state"] == "completed", final
    assert final["counters"]["frames_dropped"] == 5 and final["counters"]["frames_processed"] == 15, final


async def test_stop_while_a_prompt_runs_returns_quickly(engine):
    registry, runner, media, frames = engine
    runner.slow_on[2] = 2.5  # longer than the 2 s stop budget
    frames["a"] = [frame_of(i) for i in range(10)]
    await registry.start(make_config("a"))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    final = await registry.stop("a")
    assert time.monotonic() - started < 2.0
    assert final["state"] == "stopped"
    assert media["a"][0].closed.is_set() and media["a"][1].closed
    assert registry.status("a")["state"] == "stopped"


async def test_registry_errors(engine):
    registry, runner, media, frames = engine
    frames["a"] = frames["b"] = [frame_of(i) for i in range(500)]
    await registry.start(make_config("a"))
    with pytest.raises(StreamExists):
        await registry.start(make_config("a"))
    await registry.start(make_config("b"))
    with pytest.raises(StreamLimitReached):
        await registry.start(make_config("c"))
    with pytest.raises(StreamNotFound):
        registry.status("nope")
    with pytest.raises(StreamNotFound):
        await registry.stop("nope")
    await registry.stop_all()
    assert {s["state"] for s in registry.statuses().values()} == {"stopped"}
    # a stopped stream's id can be started again
    runner.validation_errors = {
        "2": {
            "class_type": "TrickleInput",
            "errors": [
                {
                    "type": "x",
                    "message": "bad",
                    "details": "d",
                    "extra_info": {"input_name": "timeout_seconds"},
                }
            ],
        }
    }
    with pytest.raises(WorkflowInvalid) as info:
        await registry.start(make_config("a"))
    assert "node 2 (TrickleInput) input 'timeout_seconds': bad: d" in info.value.message
    assert info.value.node_errors == runner.validation_errors


CONSTANT_BRANCH = {
    "1": {"class_type": "TrickleInput", "inputs": {}},
    "5": {"class_type": "Loader", "inputs": {"name": "m"}},
    "6": {"class_type": "Apply", "inputs": {"image": ["1", 0], "model": ["5", 0]}},
    "7": {"class_type": "After", "inputs": {"image": ["6", 0]}},
    "3": {"class_type": "TrickleOutput", "inputs": {"images": ["7", 0]}},
    "9": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
}


async def test_streams_started_together_fill_every_slot(engine):
    # a stream being launched is reserved and already a session: it must take one slot, not two
    registry, _runner, _media, _frames = engine
    statuses = await asyncio.gather(registry.start(make_config("a")), registry.start(make_config("b")))
    assert [status["request_id"] for status in statuses] == ["a", "b"]  # max_streams is 2
    with pytest.raises(StreamLimitReached):
        await registry.start(make_config("c"))
    await registry.stop_all()


async def test_prompts_carry_only_other_streams_frame_independent_nodes(engine):
    registry, runner, media, frames = engine
    frames["a"] = frames["b"] = [frame_of(i) for i in range(300)]
    await registry.start(make_config("a", CONSTANT_BRANCH))
    await registry.start(make_config("b"))
    await asyncio.sleep(0.3)
    await registry.stop_all()
    of_b = [p for p in runner.submitted if "ct2_1" in p]
    assert of_b, "stream b ran no frame"
    # b's prompts carry a's loader (frame-independent), never a's per-frame nodes or its preview
    assert all("ct1_5" in p and not {"ct1_1", "ct1_6", "ct1_7", "ct1_3", "ct1_9"} & set(p) for p in of_b)
    # a's own prompts hold only its output's ancestors (the PreviewImage never runs per frame)
    of_a = [p for p in runner.submitted if "ct1_1" in p]
    assert of_a and all("ct1_9" not in p for p in of_a)


async def test_finished_streams_stay_queryable_then_are_forgotten_with_an_event():
    bridges = BridgeDirectory()
    runner = FakeRunner(bridges)
    events: list[tuple[str, dict]] = []

    def factory(config):
        return FakeIngest([frame_of(i) for i in range(2)]), FakeEgress()

    registry = StreamRegistry(
        runner, max_streams=1, media_factory=factory, bridges=bridges,
        notifier=lambda event, payload: events.append((event, payload)),
    )
    try:
        for n in range(KEEP_FINISHED + 1):
            await registry.start(make_config(f"s{n}"))
            assert await registry.session(f"s{n}").wait_finished(5)
        assert registry.status("s1")["state"] == "completed"
        with pytest.raises(StreamNotFound):
            registry.status("s0")  # the oldest finished stream was forgotten...
        assert ("trickle.removed", {"request_id": "s0"}) in events  # ...and the UI told
        states = [p["state"] for e, p in events if e == "trickle.status" and p["request_id"] == "s1"]
        assert states[0] == "running" and states[-1] == "completed"
    finally:
        runner.close()


def test_bridge_tickets_never_cross_sessions_and_fail_readably():
    delivered = []
    old = FrameBridge("s", lambda ticket, frame, images: delivered.append(("old", frame.index)))
    new = FrameBridge("s", lambda ticket, frame, images: delivered.append(("new", frame.index)))
    old_ticket = old.open_ticket(input_frame(1, 0.0))
    new_ticket = new.open_ticket(input_frame(2, 0.0))
    assert old_ticket != new_ticket  # unique per process, even for the same stream id
    old_secret, new_secret = old.ticket_secret(old_ticket), new.ticket_secret(new_ticket)
    assert new.input_frame(new_ticket, 0.1, new_secret).index == 2
    with pytest.raises(StreamNotBound, match=f"Frame {old_ticket} of stream 's' was withdrawn"):
        new.input_frame(old_ticket, 30.0, old_secret)  # a leftover prompt of the old session: at once
    assert new.deliver(old_ticket, "x", old_secret) is False and delivered == []
    assert new.input_frame(0, 0.1, None).index == 2  # ticket 0 (a UI prompt): the newest frame
    new.close()
    with pytest.raises(StreamNotBound, match="stopped"):
        new.input_frame(new_ticket, 0.1, new_secret)
    assert new.deliver(new_ticket, "x", new_secret) is False
    assert old.deliver(old_ticket, "x", old_secret) is True and delivered == [("old", 1)]


def test_bridge_frames_flow_only_to_prompts_carrying_their_tickets_secret():
    delivered = []
    open_bridge = FrameBridge("s", lambda ticket, frame, images: delivered.append(frame.index))
    ticket = open_bridge.open_ticket(input_frame(1, 0.0))
    secret = open_bridge.ticket_secret(ticket)
    other_ticket = open_bridge.open_ticket(input_frame(2, 0.0))
    # a prompt queued by hand with the ticket copied from GET /queue: no secret, or another ticket's
    for presented in (None, "", "guess", open_bridge.ticket_secret(other_ticket)):
        with pytest.raises(StreamAccessDenied, match="not queued by stream 's'"):
            open_bridge.input_frame(ticket, 0.1, presented)
        with pytest.raises(StreamAccessDenied, match="not queued by stream 's'"):
            open_bridge.deliver(ticket, "injected", presented)
    with pytest.raises(StreamAccessDenied):  # a ticket never issued, no secret: refused at once
        open_bridge.input_frame(10**9, 30.0, None)
    assert delivered == []
    assert open_bridge.input_frame(ticket, 0.1, secret).index == 1
    assert open_bridge.deliver(ticket, "processed", secret) is True and delivered == [1]
    assert open_bridge.input_frame(0, 0.1, None).index == 2  # no token: a user's prompt reads the newest

    protected = FrameBridge("p", lambda *args: delivered.append("protected"), newest_frame_reads=False)
    protected.note_latest(input_frame(3, 0.0))
    with pytest.raises(StreamAccessDenied, match="protected by COMFY_TRICKLE_TOKEN"):
        protected.input_frame(0, 0.1, None)
    with pytest.raises(StreamAccessDenied, match="protected by COMFY_TRICKLE_TOKEN"):
        protected.deliver(0, "x", None)
    assert delivered == [1]


# --- drops survive the end of a stream ------------------------------------------------------------------
def _slow_registry(frame_count: int, *, end: bool) -> tuple[StreamRegistry, FakeRunner]:
    """A workflow far slower than its input (20 ms per frame, frames 1 ms apart) with a 0.1 s backlog:
    the hand-off must drop most frames."""
    bridges = BridgeDirectory()
    runner = FakeRunner(bridges)
    runner.slow_on.update(dict.fromkeys(range(256), 0.02))

    def factory(config):
        return FakeIngest([frame_of(i) for i in range(frame_count)], interval_s=0.001, end=end), FakeEgress()

    registry = StreamRegistry(runner, media_factory=factory, bridges=bridges, max_backlog_s=0.1)
    return registry, runner


async def test_dropped_frames_stay_counted_after_completion():
    registry, runner = _slow_registry(60, end=True)
    try:
        await registry.start(make_config("a"))
        assert await registry.session("a").wait_finished(10)
        counters = registry.status("a")["counters"]
        assert registry.status("a")["state"] == "completed"
        assert counters["frames_in"] == 60
        assert counters["frames_dropped"] > 0
        # every input frame either came out or was dropped: none vanished from the counts
        assert counters["frames_out"] + counters["frames_dropped"] == 60
    finally:
        runner.close()


async def test_dropped_frames_stay_counted_after_stop():
    registry, runner = _slow_registry(200, end=False)
    try:
        await registry.start(make_config("a"))
        for _ in range(500):  # the fake input emits its 200 frames in about 0.3 s
            if registry.status("a")["counters"]["frames_in"] == 200:
                break
            await asyncio.sleep(0.01)
        seen_running = registry.status("a")["counters"]["frames_dropped"]
        final = await registry.stop("a")
        counters = final["counters"]
        assert final["state"] == "stopped"
        assert seen_running > 0
        assert counters["frames_dropped"] >= seen_running
        assert registry.status("a")["counters"]["frames_dropped"] == counters["frames_dropped"]
        # frames still queued at stop count as dropped; at most the one prompt in flight is in neither
        assert counters["frames_out"] + counters["frames_dropped"] >= 199
    finally:
        runner.close()


def test_the_live_streams_encoders_share_the_cores_between_them():
    assert [encoder_threads(streams, cores=2) for streams in (0, 1, 2, 12)] == [2, 2, 1, 1]
    assert [encoder_threads(streams, cores=16) for streams in (1, 4, 5, 32)] == [16, 4, 3, 1]
