"""media/ts_packets.py on real ffmpeg output: the keyframe cutter makes segments that each decode on their
own (PAT, PMT, then a keyframe first; B-frames included), and the continuity rewriter joins segments with
restarted counters into a TS that ffmpeg reads without a corrupt packet."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import av
import pytest
from comfy_trickle.media.ts_packets import (
    PAT_PID,
    ContinuityRewriter,
    KeyframeCutter,
    PacketSplitter,
    has_payload,
    packet_pid,
    parse_pat,
)

FRAMES = 100


@pytest.fixture(scope="module")
def ffmpeg_ts(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """100 frames of testsrc2, x264 with 3 B-frames and a keyframe every 25 frames, as ffmpeg muxes TS."""
    path: Path = tmp_path_factory.mktemp("ts") / "in.ts"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
         "-frames:v", str(FRAMES), "-c:v", "libx264", "-bf", "3", "-g", "25", "-f", "mpegts", str(path)],
        check=True, timeout=60,
    )
    return path.read_bytes()


def cut(data: bytes, chunk: int = 777) -> list[bytes]:
    cutter = KeyframeCutter()
    segments: list[bytearray] = []
    for offset in range(0, len(data), chunk):
        for piece in cutter.feed(data[offset:offset + chunk]):
            if piece.starts_segment:
                segments.append(bytearray())
            segments[-1] += piece.data
    return [bytes(s) for s in segments]


def decode(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data), format="mpegts") as container:
        return list(container.decode(video=0))


def ffmpeg_warnings(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "joined.ts"
    path.write_bytes(data)
    done = subprocess.run(["ffmpeg", "-v", "warning", "-i", str(path), "-f", "null", "-"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_each_segment_starts_with_pat_pmt_and_a_keyframe_and_decodes_alone(ffmpeg_ts):
    segments = cut(ffmpeg_ts)
    assert len(segments) == FRAMES // 25
    decoded = 0
    for segment in segments:
        packets = PacketSplitter().feed(segment)
        assert packet_pid(packets[0]) == PAT_PID
        assert packet_pid(packets[1]) in parse_pat(packets[0])  # the PMT
        frames = decode(segment)
        assert frames[0].key_frame
        assert len(frames) == 25  # B-frames and all: nothing lost at the cuts
        decoded += len(frames)
    assert decoded == FRAMES


def test_bytes_before_the_first_keyframe_are_dropped(ffmpeg_ts):
    # start mid-stream (at a packet boundary in the second GOP's middle): the first segment is the third GOP
    packets = PacketSplitter().feed(ffmpeg_ts)
    tail = b"".join(packets[len(packets) * 3 // 8:])
    segments = cut(tail)
    assert len(segments) == 2
    assert all(decode(s)[0].key_frame for s in segments)


def restart_counters(segment: bytes) -> bytes:
    """What a per-segment muxer (our encoder) writes: every segment's counters start at 0."""
    counters: dict[int, int] = {}
    out = bytearray()
    for packet in PacketSplitter().feed(segment):
        rewritten = bytearray(packet)
        pid = packet_pid(packet)
        counter = counters.get(pid, 0)
        if has_payload(packet):
            counters[pid] = (counter + 1) & 0x0F
        rewritten[3] = (packet[3] & 0xF0) | counter
        out += rewritten
    return bytes(out)


def test_rewriter_joins_restarted_segments_into_one_clean_ts(ffmpeg_ts, tmp_path):
    segments = [restart_counters(s) for s in cut(ffmpeg_ts)]
    # plain concatenation reads as packet loss at every join ...
    assert "corrupt" in ffmpeg_warnings(b"".join(segments), tmp_path).lower()
    # ... renumbered it is one unbroken stream with every frame
    rewriter = ContinuityRewriter()
    joined = bytearray()
    for segment in segments:
        rewriter.start_segment()
        joined += rewriter.feed(segment[:1000]) + rewriter.feed(segment[1000:])
    assert ffmpeg_warnings(bytes(joined), tmp_path) == ""
    assert len(decode(bytes(joined))) == FRAMES


def test_keyframes_are_found_without_random_access_flags(ffmpeg_ts):
    """Muxers that do not set random_access_indicator: the IDR/SPS NAL unit in the PES start is enough."""
    stripped = bytearray()
    for packet in PacketSplitter().feed(ffmpeg_ts):
        packet = bytearray(packet)
        if packet[3] & 0x20 and packet[4] > 0:
            packet[5] &= ~0x40 & 0xFF  # clear random_access_indicator
        stripped += packet
    segments = cut(bytes(stripped))
    assert len(segments) == FRAMES // 25
    assert all(decode(s)[0].key_frame for s in segments)
