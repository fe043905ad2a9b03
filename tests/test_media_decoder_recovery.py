"""The streaming decoder survives bad input: it skips what it cannot decode, counts it and keeps going."""

from __future__ import annotations

import random
import threading
import time

import pytest
from comfy_trickle.media.bytefeed import ByteFeed
from comfy_trickle.media.decoder import StreamDecoder, decode_bytes
from comfy_trickle.media.synthetic import SyntheticConfig, SyntheticSource, read_frame_index

pytestmark = pytest.mark.timeout(60)

WIDTH, HEIGHT = 128, 96


def garbage(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _ in range(size))


@pytest.fixture(scope="module")
def segments():
    """Three 1 s segments (30 frames each) with Opus audio."""
    return SyntheticSource(SyntheticConfig(width=WIDTH, height=HEIGHT, audio="opus")).segments(90)


def indices(frames):
    return [read_frame_index(f.rgb) for f in frames]


def test_clean_stream_baseline(segments):
    frames, audio, stats = decode_bytes([s.data for s in segments])
    assert indices(frames) == list(range(90))
    assert stats.corrupt_skipped == 0 and stats.demux_restarts == 0
    assert len(audio) == stats.audio_packets > 0


@pytest.mark.parametrize("marks", [False, True], ids=["continuous", "segment-marks"])
def test_garbage_before_the_stream(segments, marks):
    frames, _, stats = decode_bytes([garbage(20_000), *(s.data for s in segments)], segment_starts=marks)
    assert indices(frames) == list(range(90))
    assert stats.bytes_in == 20_000 + sum(len(s.data) for s in segments)


@pytest.mark.parametrize("marks", [False, True], ids=["continuous", "segment-marks"])
def test_garbage_between_segments(segments, marks):
    data = [segments[0].data, garbage(50_000, seed=2), segments[1].data, segments[2].data]
    frames, _, stats = decode_bytes(data, segment_starts=marks)
    got = indices(frames)
    assert got == sorted(got)  # order kept
    assert set(range(30, 90)) <= set(got)  # everything after the garbage is back
    assert len(got) >= 89  # at most the frame whose end the garbage hid
    assert stats.frames_missing + stats.corrupt_skipped == 90 - len(got)


@pytest.mark.parametrize("marks", [False, True], ids=["continuous", "segment-marks"])
def test_corrupt_bytes_inside_a_segment(segments, marks):
    broken = bytearray(segments[1].data)
    middle = len(broken) // 2
    broken[middle : middle + 3000] = garbage(3000, seed=3)
    frames, _, stats = decode_bytes([segments[0].data, bytes(broken), segments[2].data], segment_starts=marks)
    assert stats.video_packets < 90
    got = indices(frames)
    assert got == sorted(got)
    assert set(range(30)) <= set(got) and set(range(60, 90)) <= set(got)
    lost = 90 - len(got)
    assert lost > 0
    # Every lost frame is accounted for: packets the garbage destroyed show as a pts gap, packets that
    # arrived damaged (or referenced damaged pictures) as corrupt_skipped.
    assert stats.frames_missing > 0 and stats.corrupt_skipped > 0
    assert stats.frames_missing + stats.corrupt_skipped == lost
    assert stats.emitted == len(got)


@pytest.mark.parametrize("marks", [False, True], ids=["continuous", "segment-marks"])
def test_truncated_segment(segments, marks):
    truncated = segments[1].data[: len(segments[1].data) // 3]
    frames, _, stats = decode_bytes([segments[0].data, truncated, segments[2].data], segment_starts=marks)
    got = indices(frames)
    assert got[:30] == list(range(30))
    assert got[-30:] == list(range(60, 90))  # the next segment's IDR brings everything back
    assert 60 < len(got) < 90
    assert stats.frames_missing == 90 - len(got)  # the cut-off frames are counted as a pts gap
    assert stats.corrupt_skipped == 0


@pytest.mark.parametrize("marks", [False, True], ids=["continuous", "segment-marks"])
def test_resolution_change_mid_stream(marks):
    small = SyntheticSource(SyntheticConfig(width=128, height=96, audio=None))
    big = SyntheticSource(SyntheticConfig(width=256, height=160, audio=None, start_pts=small.pts(30)))
    data = [s.data for s in small.segments(30)] + [s.data for s in big.segments(30)]
    frames, _, stats = decode_bytes(data, segment_starts=marks)
    assert [f.rgb.shape for f in frames] == [(96, 128, 3)] * 30 + [(160, 256, 3)] * 30
    assert stats.resolution_changes == 1
    scaled, _, _ = decode_bytes(data, width=64, height=48)  # a fixed output size hides the change
    assert len(scaled) == 60 and {f.rgb.shape for f in scaled} == {(48, 64, 3)}


@pytest.mark.parametrize("marks", [False, True], ids=["continuous", "segment-marks"])
def test_source_restart_with_pts_jumping_back(marks):
    first = SyntheticSource(SyntheticConfig(width=WIDTH, height=HEIGHT, audio="opus", start_pts=900_000))
    restarted = SyntheticSource(SyntheticConfig(width=WIDTH, height=HEIGHT, audio="opus", start_pts=0))
    data = [s.data for s in first.segments(45)] + [s.data for s in restarted.segments(45)]
    frames, audio, stats = decode_bytes(data, max_fps=30, segment_starts=marks)
    assert len(frames) == 90 and stats.dropped_by_rate == 0  # the rate cap re-anchors after the jump
    assert [f.pts for f in frames[44:47]] == [first.pts(44), 0, restarted.pts(1)]
    assert stats.pts_resets == 1
    assert [f.index for f in frames] == list(range(90))
    assert min(a.pts for a in audio) < 90_000 < max(a.pts for a in audio)


def test_pure_garbage_ends_cleanly():
    frames, audio, stats = decode_bytes([garbage(300_000, seed=5)])
    assert frames == [] and audio == []
    assert stats.bytes_in == 300_000 and stats.video_packets == 0


def test_callback_errors_are_counted_and_decoding_goes_on(segments):
    seen = []

    def flaky(frame):
        seen.append(frame.index)
        if frame.index % 10 == 0:
            raise RuntimeError("consumer bug")

    decoder = StreamDecoder(flaky, max_fps=None)
    decoder.start()
    for segment in segments:
        decoder.feed(segment.data)
    decoder.end_of_input()
    assert decoder.join(20)
    assert seen == list(range(90))
    assert decoder.stats.callback_errors == 9
    assert decoder.error is None


def test_stop_is_quick_mid_stream_and_while_waiting(segments):
    started = threading.Event()
    decoder = StreamDecoder(lambda f: started.set())
    decoder.start()
    decoder.feed(segments[0].data)  # no end_of_input: the thread blocks waiting for more bytes
    assert started.wait(10)
    time.sleep(0.05)
    assert decoder.running
    began = time.monotonic()
    decoder.stop()
    assert decoder.join(2.0)
    assert time.monotonic() - began < 1.0
    assert not decoder.running
    decoder.feed(segments[1].data)  # feeding after stop is harmless


def test_finished_callback_reports_end(segments):
    finished = []
    decoder = StreamDecoder(lambda f: None, on_finished=finished.append)
    decoder.start()
    decoder.feed(segments[0].data)
    decoder.end_of_input()
    assert decoder.join(10)
    assert finished == [None]


def test_input_buffer_is_bounded():
    feed = ByteFeed(max_buffered_bytes=100_000)
    for _ in range(50):
        feed.feed(b"\x47" * 10_000)
    assert feed.buffered_bytes <= 100_000
    assert feed.bytes_dropped == 400_000 and feed.bytes_in == 500_000
    assert len(feed.read(4096)) == 4096
    feed.close()
    assert feed.read(10) == b""


def test_feed_does_not_block_when_the_decoder_is_slow(segments):
    release = threading.Event()
    decoder = StreamDecoder(lambda f: release.wait(5), max_buffered_bytes=64_000)
    decoder.start()
    began = time.monotonic()
    for _ in range(5):
        for segment in segments:
            decoder.feed(segment.data)
    assert time.monotonic() - began < 0.5
    assert decoder.stats.bytes_dropped > 0
    release.set()
    decoder.stop()
    assert decoder.join(5)


def test_audio_packets_keep_codec_and_timestamps():
    for codec, rate in (("opus", 48000), ("aac", 44100)):
        source = SyntheticSource(SyntheticConfig(width=WIDTH, height=HEIGHT, audio=codec, start_pts=9000))
        _, audio, _ = decode_bytes([s.data for s in source.segments(60)])
        assert {a.codec for a in audio} == {codec}
        assert {a.sample_rate for a in audio} == {rate}
        pts = [a.pts for a in audio]
        assert pts == sorted(pts) and len(set(pts)) == len(pts)
        assert 9000 <= pts[0] < 9000 + 9000 and pts[-1] > 9000 + 150_000  # spans the 2 s of video
        assert all(a.data for a in audio)
