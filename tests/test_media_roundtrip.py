"""Round trips through our own encoder and decoder: frames, order, pts, pixels, segmenting, trickling."""

from __future__ import annotations

import os
from fractions import Fraction
from itertools import pairwise

import numpy as np
import pytest
from comfy_trickle.media.decoder import decode_bytes
from comfy_trickle.media.encoder import EncoderSettings, SegmentEncoder
from comfy_trickle.media.synthetic import (
    SyntheticConfig,
    SyntheticSource,
    make_test_frame,
    psnr,
    read_frame_index,
)
from comfy_trickle.media.types import MPEGTS_TIME_BASE

pytestmark = pytest.mark.timeout(60)


class RecordingSink:
    """Keeps every sink call, so tests can see when bytes arrived relative to encode() calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | bytes]] = []
        self.segments: list[bytearray] = []

    def start_segment(self, index: int) -> None:
        self.calls.append(("start", index))
        self.segments.append(bytearray())

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))
        self.segments[-1] += data

    def end_segment(self) -> None:
        self.calls.append(("end", len(self.segments) - 1))


def test_round_trip_count_order_pts_and_psnr():
    source = SyntheticSource(SyntheticConfig(width=192, height=128, fps=30, audio=None))
    segments = source.segments(75)
    assert [s.frame_count for s in segments] == [30, 30, 15]
    assert [s.first_pts for s in segments] == [0, 90000, 180000]

    frames, _, stats = decode_bytes([s.data for s in segments])

    assert len(frames) == 75
    assert [read_frame_index(f.rgb) for f in frames] == list(range(75))
    assert [f.index for f in frames] == list(range(75))
    assert [f.pts for f in frames] == [source.pts(i) for i in range(75)]
    assert all(f.time_base == MPEGTS_TIME_BASE for f in frames)
    assert all(f.rgb.dtype == np.uint8 and f.rgb.shape == (128, 192, 3) for f in frames)
    scores = [psnr(f.rgb, source.frame(i)) for i, f in enumerate(frames)]
    assert min(scores) >= 35.0, f"worst PSNR {min(scores):.1f} dB"
    assert stats.corrupt_skipped == 0 and stats.decoded == 75


def test_segments_are_self_contained_and_start_with_a_keyframe():
    segments = SyntheticSource(SyntheticConfig(width=128, height=96, audio=None)).segments(60)
    for segment in segments:
        # Decoding any segment on its own (a subscriber joining there) yields all of its frames.
        frames, _, stats = decode_bytes(segment.data)
        assert len(frames) == segment.frame_count
        assert frames[0].pts == segment.first_pts
        assert stats.corrupt_skipped == 0
        assert segment.data[0] == 0x47  # a TS packet; PAT first is checked with ffprobe elsewhere


def test_segment_length_is_configurable():
    two_seconds = SyntheticSource(SyntheticConfig(width=128, height=96, segment_seconds=2.0, audio=None))
    assert [s.frame_count for s in two_seconds.segments(90)] == [60, 30]
    half = SyntheticSource(SyntheticConfig(width=128, height=96, fps=20, segment_seconds=0.5, audio=None))
    assert [s.frame_count for s in half.segments(40)] == [10, 10, 10, 10]


def test_bytes_trickle_out_frame_by_frame():
    sink = RecordingSink()
    encoder = SegmentEncoder(sink, EncoderSettings(audio=False))
    writes_after_each_frame = []
    for i in range(10):
        encoder.encode(make_test_frame(i, 128, 96), i * 3000, MPEGTS_TIME_BASE)
        writes_after_each_frame.append(sum(1 for kind, _ in sink.calls if kind == "write"))
    # Every encode() call handed bytes to the sink before returning (no waiting for segment end).
    assert all(later > earlier for earlier, later in pairwise([0, *writes_after_each_frame]))
    assert sink.calls[0] == ("start", 0)
    assert ("end", 0) not in sink.calls  # the segment is still open, yet most of it is already out
    encoder.close()
    assert sink.calls[-1] == ("end", 0)
    frames, _, _ = decode_bytes(bytes(sink.segments[0]))
    assert [f.pts for f in frames] == [i * 3000 for i in range(10)]


def test_pts_carried_from_input_time_base():
    sink = RecordingSink()
    encoder = SegmentEncoder(sink, EncoderSettings(audio=False))
    time_base = Fraction(1, 1000)  # milliseconds, e.g. from a WebRTC source
    for i, ms in enumerate([5000, 5040, 5080, 5120]):
        encoder.encode(make_test_frame(i, 128, 96), ms, time_base)
    encoder.close()
    frames, _, _ = decode_bytes(bytes(sink.segments[0]))
    assert [f.pts for f in frames] == [450000, 453600, 457200, 460800]


def test_size_change_starts_a_new_segment_with_new_size():
    sink = RecordingSink()
    encoder = SegmentEncoder(sink, EncoderSettings(audio=False))
    for i in range(5):
        encoder.encode(make_test_frame(i, 128, 96), i * 3000, MPEGTS_TIME_BASE)
    for i in range(5, 10):  # a workflow that upscales from here on
        encoder.encode(make_test_frame(i, 256, 192), i * 3000, MPEGTS_TIME_BASE)
    encoder.close()
    assert len(sink.segments) == 2
    assert encoder.stats.size_changes == 1 and encoder.stats.keyframes == 2
    first, _, _ = decode_bytes(bytes(sink.segments[0]))
    second, _, _ = decode_bytes(bytes(sink.segments[1]))
    assert [f.rgb.shape for f in first] == [(96, 128, 3)] * 5
    assert [f.rgb.shape for f in second] == [(192, 256, 3)] * 5
    assert [read_frame_index(f.rgb) for f in second] == [5, 6, 7, 8, 9]


def test_pts_going_back_starts_a_new_segment():
    sink = RecordingSink()
    encoder = SegmentEncoder(sink, EncoderSettings(audio=False))
    for i, pts in enumerate([90000, 93000, 96000, 3000, 6000]):
        encoder.encode(make_test_frame(i, 128, 96), pts, MPEGTS_TIME_BASE)
    encoder.close()
    assert encoder.stats.pts_resets == 1
    assert len(sink.segments) == 2
    second, _, _ = decode_bytes(bytes(sink.segments[1]))
    assert [f.pts for f in second] == [3000, 6000]


def test_odd_sized_frames_lose_one_edge_line():
    sink = RecordingSink()
    encoder = SegmentEncoder(sink, EncoderSettings(audio=False))
    encoder.encode(make_test_frame(0, 131, 97), 0, MPEGTS_TIME_BASE)
    encoder.close()
    frames, _, _ = decode_bytes(bytes(sink.segments[0]))
    assert frames[0].rgb.shape == (96, 130, 3)


def test_encoder_rejects_wrong_frames():
    encoder = SegmentEncoder(RecordingSink(), EncoderSettings(audio=False))
    with pytest.raises(ValueError, match="uint8"):
        encoder.encode(np.zeros((96, 128, 3), np.float32), 0, MPEGTS_TIME_BASE)
    with pytest.raises(ValueError, match="HxWx3"):
        encoder.encode(np.zeros((96, 128), np.uint8), 0, MPEGTS_TIME_BASE)
    encoder.close()
    with pytest.raises(RuntimeError, match="closed"):
        encoder.encode(make_test_frame(0, 128, 96), 0, MPEGTS_TIME_BASE)


def test_rate_cap_drops_by_pts():
    source = SyntheticSource(SyntheticConfig(width=128, height=96, fps=60, audio=None))
    segments = source.segments(60)
    frames, _, stats = decode_bytes([s.data for s in segments], max_fps=30)
    assert len(frames) == 30 and stats.dropped_by_rate == 30
    assert [read_frame_index(f.rgb) for f in frames] == list(range(0, 60, 2))
    assert [f.index for f in frames] == list(range(30))  # indices count emitted frames
    slow, _, slow_stats = decode_bytes([s.data for s in segments], max_fps=60)
    assert len(slow) == 60 and slow_stats.dropped_by_rate == 0


@pytest.mark.parametrize(
    ("source_size", "target", "expect_index"),
    [((256, 128), (128, 128), False), ((128, 96), (256, 192), True), ((192, 128), (64, 128), False)],
)
def test_resize_and_center_crop(source_size, target, expect_index):
    width, height = source_size
    source = SyntheticSource(SyntheticConfig(width=width, height=height, audio=None))
    frames, _, _ = decode_bytes([s.data for s in source.segments(3)], width=target[0], height=target[1])
    assert [f.rgb.shape for f in frames] == [(target[1], target[0], 3)] * 3
    assert all(f.rgb.flags.c_contiguous for f in frames)
    # Cover-then-crop keeps the aspect: compare with the reference scaled and cropped the same way.
    reference = source.frame(0).astype(np.float32)
    scale = max(target[0] / width, target[1] / height)
    scaled_w, scaled_h = round(width * scale), round(height * scale)
    ys = ((np.arange(scaled_h) + 0.5) / scale - 0.5).clip(0, height - 1).round().astype(int)
    xs = ((np.arange(scaled_w) + 0.5) / scale - 0.5).clip(0, width - 1).round().astype(int)
    top, left = (scaled_h - target[1]) // 2, (scaled_w - target[0]) // 2
    expected = reference[ys][:, xs][top : top + target[1], left : left + target[0]]
    assert psnr(frames[0].rgb, expected.astype(np.uint8)) > 24.0
    if expect_index:  # a pure scale keeps the index strip whole; a crop cuts it
        assert [read_frame_index(f.rgb) for f in frames] == [0, 1, 2]


def test_target_size_must_be_multiples_of_8():
    from comfy_trickle.media.decoder import StreamDecoder

    with pytest.raises(ValueError, match="multiples of 8"):
        StreamDecoder(lambda f: None, width=100, height=64)
    with pytest.raises(ValueError, match="together"):
        StreamDecoder(lambda f: None, width=128)


@pytest.mark.parametrize("audio_seconds", [0.0, 2.5, 0.3])
def test_each_frame_is_decodable_as_soon_as_encode_returns(audio_seconds):
    """The publisher can send each frame's bytes at once: no frame waits for the segment end or for audio.

    Audio is queued ahead of the video, as in a live pipeline where video goes through the workflow. When
    the audio stops (0.3 s case), the muxer holds each video packet until the next one (it waits for audio
    to interleave) - at most one frame - until the encoder notices and cuts a video-only segment.
    """
    from comfy_trickle.media.tone import ToneSource

    sink = RecordingSink()
    encoder = SegmentEncoder(sink, EncoderSettings())
    if audio_seconds:
        for packet in ToneSource("opus").packets_until(round(audio_seconds * 90000)):
            encoder.add_audio(packet)
    lags = []
    first_of_segment: dict[int, int] = {}
    for i in range(60):
        encoder.encode(make_test_frame(i, 128, 96), i * 3000, MPEGTS_TIME_BASE)
        first = first_of_segment.setdefault(len(sink.segments), i)
        frames, _, _ = decode_bytes(bytes(sink.segments[-1]))  # each segment decodes on its own
        decoded = [read_frame_index(f.rgb) for f in frames]
        assert decoded == list(range(first, first + len(decoded)))
        lags.append(i + 1 - first - len(decoded))
    encoder.close()
    _, audio, _ = decode_bytes(b"".join(bytes(s) for s in sink.segments))
    if audio_seconds == 0.3:
        assert set(lags) == {0, 1}
        assert lags[-15:] == [0] * 15  # after the cut: no lag any more
        assert len(sink.segments) == 3 and encoder.stats.keyframes == 3  # 0-1 s, 1-1.33 s, then video only
        assert 0 < len(audio) <= 16
    else:
        assert set(lags) == {0}
        assert len(sink.segments) == 2
        assert (len(audio) >= 2 * 50) == bool(audio_seconds)  # 20 ms Opus packets over the 2 s of video


def test_bitrate_cap_limits_noise_like_content():
    rng = np.random.default_rng(3)
    noise = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(30)]  # 1 s at 30 fps

    def encoded_bytes(settings: EncoderSettings) -> int:
        sink = RecordingSink()
        encoder = SegmentEncoder(sink, settings)
        for i, frame in enumerate(noise):
            encoder.encode(frame, i * 3000, MPEGTS_TIME_BASE)
        encoder.close()
        return sum(len(s) for s in sink.segments)

    uncapped = encoded_bytes(EncoderSettings(audio=False))
    capped = encoded_bytes(EncoderSettings(audio=False, max_bitrate=300_000, buffer_size=300_000))
    assert uncapped > 150_000  # over 1.2 Mbit/s even at this small size, at the default CRF
    # One second at the cap, plus the VBV buffer the first IDR may spend, plus TS overhead.
    assert capped < (300_000 + 300_000) / 8 * 1.15
    assert capped < uncapped / 2


def test_repeated_pts_are_nudged_not_treated_as_a_restart():
    """Several images of one batch may share the input frame's pts; the muxer needs increasing ones."""
    sink = RecordingSink()
    encoder = SegmentEncoder(sink, EncoderSettings(audio=False))
    for i, pts in enumerate([0, 3000, 3000, 3000, 6000]):
        encoder.encode(make_test_frame(i, 128, 96), pts, MPEGTS_TIME_BASE)
    encoder.close()
    assert encoder.stats.pts_adjusted == 2 and encoder.stats.pts_resets == 0
    assert len(sink.segments) == 1
    frames, _, _ = decode_bytes(bytes(sink.segments[0]))
    assert [f.pts for f in frames] == [0, 3000, 3001, 3002, 6000]
    assert [read_frame_index(f.rgb) for f in frames] == [0, 1, 2, 3, 4]


def test_flush_ends_the_segment_and_encoding_can_go_on():
    sink = RecordingSink()
    encoder = SegmentEncoder(sink, EncoderSettings(audio=False))
    for i in range(5):
        encoder.encode(make_test_frame(i, 128, 96), i * 3000, MPEGTS_TIME_BASE)
    encoder.flush()
    assert sink.calls[-1] == ("end", 0)
    for i in range(5, 10):
        encoder.encode(make_test_frame(i, 128, 96), i * 3000, MPEGTS_TIME_BASE)
    encoder.close()
    encoder.close()  # idempotent
    assert [kind for kind, _ in sink.calls if kind != "write"] == ["start", "end", "start", "end"]
    second, _, _ = decode_bytes(bytes(sink.segments[1]))  # starts with its own IDR
    assert [read_frame_index(f.rgb) for f in second] == [5, 6, 7, 8, 9]
    assert encoder.stats.keyframes == 2 and encoder.stats.frames == 10


def _threads_of_this_process() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
def test_the_encoder_asks_for_its_x264_threads_each_time_x264_opens():
    """The stream engine shares the cores among the live streams' encoders (``encoder_threads``): the
    encoder asks when x264 opens (the first frame, and a new size), and x264 runs that many threads."""
    answers = iter([4, 1])
    asked = []

    def threads() -> int:
        asked.append(next(answers))
        return asked[-1]

    encoder = SegmentEncoder(RecordingSink(), EncoderSettings(audio=False, threads=threads))
    before = _threads_of_this_process()
    encoder.encode(make_test_frame(0, 256, 192), 0, MPEGTS_TIME_BASE)  # (x264 runs none for tiny frames)
    with_four = _threads_of_this_process() - before
    encoder.encode(make_test_frame(1, 512, 384), 3000, MPEGTS_TIME_BASE)  # a new size: x264 opens again
    encoder.encode(make_test_frame(2, 512, 384), 6000, MPEGTS_TIME_BASE)
    with_one = _threads_of_this_process() - before
    encoder.close()
    assert asked == [4, 1]
    assert with_four >= 4 and with_one < with_four, (with_four, with_one)
