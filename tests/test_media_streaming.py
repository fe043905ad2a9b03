"""Live behaviour: frames leave the decoder while their segment is still arriving; the synthetic source's
chunks are publishable as they come; audio survives a source restart end to end."""

from __future__ import annotations

import threading
from itertools import islice

import pytest
from comfy_trickle.media.decoder import StreamDecoder, decode_bytes
from comfy_trickle.media.encoder import EncoderSettings, SegmentEncoder
from comfy_trickle.media.synthetic import SyntheticConfig, SyntheticSource, read_frame_index

pytestmark = pytest.mark.timeout(60)


class FrameCounter:
    def __init__(self) -> None:
        self.frames: list[int] = []
        self._cond = threading.Condition()

    def __call__(self, frame) -> None:
        with self._cond:
            self.frames.append(read_frame_index(frame.rgb))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> int:
        with self._cond:
            self._cond.wait_for(lambda: len(self.frames) >= count, timeout)
            return len(self.frames)


def test_frames_are_emitted_before_their_segment_ends():
    source = SyntheticSource(SyntheticConfig(width=128, height=96, audio="opus"))
    counter = FrameCounter()
    decoder = StreamDecoder(counter, max_fps=None)
    decoder.start()
    try:
        for chunk in source.chunks(20):  # one chunk per encoded frame, as a publisher trickles them
            decoder.feed(chunk.data)
            # After frame k's bytes, frame k itself is out: the decoder does not wait for frame k+1's
            # start (media/pes_release.py), long before the 1 s segment ends.
            assert counter.wait_for(chunk.frame_index + 1) == chunk.frame_index + 1
        assert counter.frames == list(range(20))
        decoder.end_of_input()
        assert decoder.join(5)
        assert counter.frames == list(range(20))
    finally:
        decoder.stop()


def test_synthetic_chunks_mark_segments_and_frames():
    source = SyntheticSource(SyntheticConfig(width=128, height=96, fps=10, audio="aac"))
    chunks = list(source.chunks(25))
    assert [c.segment for c in chunks if c.starts_segment] == [0, 1, 2]
    assert [c.segment for c in chunks if c.ends_segment] == [0, 1, 2]
    assert chunks[-1].ends_segment and chunks[-1].frame_index == 24
    assert [c.media_time for c in chunks if c.starts_segment] == [0.0, 1.0, 2.0]
    # Each segment's chunks, joined, are a complete TS holding exactly that segment's frames.
    for segment in range(3):
        data = b"".join(c.data for c in chunks if c.segment == segment)
        frames, audio, _ = decode_bytes(data)
        owned = sorted({c.frame_index for c in chunks if c.segment == segment})
        assert [read_frame_index(f.rgb) for f in frames] == owned
        assert {a.codec for a in audio} == {"aac"}


def test_synthetic_source_runs_forever_until_closed():
    source = SyntheticSource(SyntheticConfig(width=128, height=96, audio=None))
    stream = source.chunks()  # no frame count: a live test source
    first = list(islice(stream, 45))
    stream.close()  # closing the generator releases the encoder
    assert max(c.frame_index for c in first) >= 40
    assert source.frame(3).shape == (96, 128, 3) and read_frame_index(source.frame(1234)) == 1234


def test_audio_passes_through_a_source_restart():
    """Decoder -> encoder with a source restart (pts back to 0): video and Opus audio on both timelines."""
    before = SyntheticSource(SyntheticConfig(width=128, height=96, audio="opus", start_pts=450_000))
    after = SyntheticSource(SyntheticConfig(width=128, height=96, audio="opus", start_pts=0))
    frames, audio, _ = decode_bytes(
        [s.data for s in before.segments(30)] + [s.data for s in after.segments(30)]
    )
    segments: list[bytearray] = []

    class Sink:
        def start_segment(self, index: int) -> None:
            segments.append(bytearray())

        def write(self, data: bytes) -> None:
            segments[-1] += data

        def end_segment(self) -> None:
            pass

    encoder = SegmentEncoder(Sink(), EncoderSettings())
    for packet in audio:  # all audio arrives ahead of the video, as from a live decoder
        encoder.add_audio(packet)
    for frame in frames:
        encoder.encode(frame.rgb, frame.pts, frame.time_base)
    encoder.close()
    assert encoder.stats.pts_resets == 1
    out_frames, out_audio, _ = decode_bytes(b"".join(bytes(s) for s in segments))
    assert [f.pts for f in out_frames] == [f.pts for f in frames]
    old = [a.pts for a in out_audio if a.pts >= 450_000]
    new = [a.pts for a in out_audio if a.pts < 450_000]
    assert len(old) >= 45 and len(new) >= 45  # about 1 s of 20 ms packets on each timeline
    assert {a.codec for a in out_audio} == {"opus"}


def test_segment_starts_renew_the_demuxer_for_a_new_stream_layout():
    """A source restart that adds an audio track: one long-lived demuxer never reports the new track
    (PyAV ignores streams a later PMT adds); marking segment starts picks it up."""
    video_only = SyntheticSource(SyntheticConfig(width=128, height=96, audio=None))
    with_audio = SyntheticSource(
        SyntheticConfig(width=128, height=96, audio="opus", start_pts=video_only.pts(30))
    )
    segments = [s.data for s in video_only.segments(30)] + [s.data for s in with_audio.segments(30)]

    frames, audio, stats = decode_bytes(segments, segment_starts=True)
    assert [read_frame_index(f.rgb) for f in frames] == list(range(30)) + list(range(30))
    assert len(audio) >= 45 and min(a.pts for a in audio) >= video_only.pts(29)
    assert stats.corrupt_skipped == 0 and stats.frames_missing == 0

    frames, audio, _ = decode_bytes(segments)  # without marks the video still flows, the new track is lost
    assert len(frames) == 60 and audio == []


def test_segment_start_flushes_the_previous_segments_last_frames():
    source = SyntheticSource(SyntheticConfig(width=128, height=96, audio="opus"))
    chunks = list(source.chunks(40))
    counter = FrameCounter()
    decoder = StreamDecoder(counter, max_fps=None)
    decoder.start()
    try:
        for chunk in chunks:
            decoder.feed(chunk.data, segment_start=chunk.starts_segment)
            if chunk.starts_segment and chunk.segment == 1:
                break
        # The first bytes of segment 1 end segment 0 for the demuxer: all 30 frames are out now,
        # not a frame into segment 1.
        assert counter.wait_for(30) == 30
        assert counter.frames == list(range(30))
    finally:
        decoder.stop()
        assert decoder.join(5)
