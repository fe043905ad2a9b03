"""Interop with an independent implementation (Debian's ffmpeg/ffprobe).

- We decode what ffmpeg's libx264 (with B-frames) + Opus/AAC produces, segmented like the gateway does.
- ffprobe/ffmpeg accept what we produce: H.264 without B-frames, IDR first in every segment, PAT/PMT at
  every segment start, monotonic pts, audio present (Opus) when the input had audio, also from AAC input.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from comfy_trickle.media.decoder import StreamDecoder, decode_bytes
from comfy_trickle.media.encoder import EncoderSettings, SegmentEncoder
from comfy_trickle.media.synthetic import SyntheticConfig, SyntheticSource, psnr

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
        reason="needs Debian's ffmpeg/ffprobe (apt-get install -y ffmpeg; scripts/setup installs it)",
    ),
]

FPS = 30
SECONDS = 2
W, H = 160, 120


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60)


def ffprobe(path: Path, *args: str) -> dict:
    return json.loads(run("ffprobe", "-v", "error", "-of", "json", *args, str(path)).stdout)


def ffmpeg_source(tmp_path: Path, audio_codec: str) -> list[bytes]:
    """testsrc2 + sine through ffmpeg's libx264 (default B-frames) into 1 s MPEG-TS segments."""
    audio = ["-c:a", "libopus", "-ac", "2"] if audio_codec == "opus" else ["-c:a", "aac", "-ar", "44100"]
    run(
        "ffmpeg", "-v", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate={FPS}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(SECONDS), "-c:v", "libx264", "-preset", "veryfast", "-g", str(FPS), "-pix_fmt", "yuv420p",
        *audio,
        "-f", "segment", "-segment_time", "1", "-segment_format", "mpegts",
        str(tmp_path / "in%03d.ts"),
    )  # fmt: skip
    return [p.read_bytes() for p in sorted(tmp_path.glob("in*.ts"))]


def ffmpeg_rgb_frames(path: Path) -> np.ndarray:
    raw = run_bytes("ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-")
    return np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3)


def run_bytes(*args: str) -> bytes:
    return subprocess.run(args, capture_output=True, check=True, timeout=60).stdout


def picture_nal_types(path: Path) -> list[int]:
    """H.264 picture NAL unit types (5 IDR, 1 non-IDR slice) in decode order, from ffmpeg's trace log."""
    command = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "trace",
        "-threads",
        "1",
        "-i",
        str(path),
        "-map",
        "0:v",
    ]
    log = subprocess.run([*command, "-f", "null", "-"], capture_output=True, text=True, timeout=60).stderr
    by_context: dict[str, list[int]] = {}
    for context, nal_type in re.findall(r"\[h264 @ (0x[0-9a-f]+)\] nal_unit_type: (\d+)", log):
        if int(nal_type) in (1, 5):
            by_context.setdefault(context, []).append(int(nal_type))
    return list(by_context.values())[-1]  # the decoding context; earlier ones only probed the stream


@pytest.mark.parametrize("audio_codec", ["opus", "aac"])
def test_decode_ffmpeg_segments_with_b_frames_and_audio(tmp_path, audio_codec):
    segments = ffmpeg_source(tmp_path, audio_codec)
    assert len(segments) >= 2
    # Cut the stream into odd-sized chunks that straddle segment boundaries, as the network delivers it.
    stream = b"".join(segments)
    chunks = [stream[i : i + 7001] for i in range(0, len(stream), 7001)]
    frames, audio, stats = decode_bytes(chunks)

    assert len(frames) == FPS * SECONDS
    pts = [f.pts for f in frames]
    assert all(b - a == 90000 // FPS for a, b in zip(pts, pts[1:], strict=False))  # display order
    assert stats.corrupt_skipped == 0 and stats.frames_missing == 0 and stats.pts_resets == 0
    # Pixels match ffmpeg's own decode of the same stream.
    (tmp_path / "all.ts").write_bytes(stream)
    reference = ffmpeg_rgb_frames(tmp_path / "all.ts")
    assert len(reference) == len(frames)
    assert min(psnr(f.rgb, ref) for f, ref in zip(frames, reference, strict=True)) > 35.0
    # Audio packets are kept with their codec and a timeline next to the video's.
    assert {a.codec for a in audio} == {audio_codec}
    audio_pts = [a.pts for a in audio]
    assert audio_pts == sorted(audio_pts)
    assert abs(audio_pts[0] - pts[0]) < 90000 // 5
    assert audio_pts[-1] - audio_pts[0] > 90000 * (SECONDS - 0.2)


class FileSink:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.paths: list[Path] = []
        self._handle = None

    def start_segment(self, index: int) -> None:
        self.paths.append(self.folder / f"out{index:03d}.ts")
        self._handle = self.paths[-1].open("wb")

    def write(self, data: bytes) -> None:
        self._handle.write(data)

    def end_segment(self) -> None:
        self._handle.close()


def table_pids_first(data: bytes) -> bool:
    """True if the TS opens with a PAT and then the PMT it names, before any audio/video packet."""
    offsets = range(0, min(len(data), 188 * 8), 188)
    assert all(data[i] == 0x47 for i in offsets)
    pids = [((data[i + 1] & 0x1F) << 8) | data[i + 2] for i in offsets]
    if 0 not in pids:
        return False
    pat = pids.index(0) * 188
    section = pat + 5 + data[pat + 4]  # after the TS header and the pointer field
    pmt_pid = ((data[section + 10] & 0x1F) << 8) | data[section + 11]
    first_media = next(i for i, pid in enumerate(pids) if pid not in (0x0000, 0x0011, pmt_pid))
    return pids.index(0) < first_media and pmt_pid in pids[:first_media]


def check_output_segments(paths: list[Path], expect_audio: bool) -> list[int]:
    """ffprobe every segment; return all video pts in order."""
    all_pts: list[int] = []
    frames_per_segment: list[int] = []
    for path in paths:
        data = path.read_bytes()
        assert table_pids_first(data), "segment must open with its tables (SDT, PAT, PMT) before media"
        entries = "stream=codec_name,codec_type,has_b_frames,sample_rate:frame=pict_type,key_frame,pts"
        info = ffprobe(path, "-show_streams", "-show_frames", "-show_entries", entries)
        streams = {s["codec_type"]: s for s in info["streams"]}
        assert streams["video"]["codec_name"] == "h264"
        assert streams["video"]["has_b_frames"] == 0
        if expect_audio:
            assert streams["audio"]["codec_name"] == "opus"
            assert int(streams["audio"]["sample_rate"]) == 48000
        else:
            assert "audio" not in streams
        video_frames = [f for f in info["frames"] if "pict_type" in f]
        assert video_frames[0]["pict_type"] == "I" and video_frames[0]["key_frame"] == 1
        assert all(f["pict_type"] in ("I", "P") for f in video_frames)
        all_pts += [int(f["pts"]) for f in video_frames]
        frames_per_segment.append(len(video_frames))
    assert all(b > a for a, b in zip(all_pts, all_pts[1:], strict=False))
    whole = paths[0].parent / "whole.ts"
    whole.write_bytes(b"".join(p.read_bytes() for p in paths))
    errors = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(whole), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stderr
    assert errors.strip() == "", errors
    # An IDR exactly where each segment starts, and nowhere else (x264's own GOP never cut in).
    nal_types = picture_nal_types(whole)
    starts = [sum(frames_per_segment[:i]) for i in range(len(frames_per_segment))]
    assert len(nal_types) == len(all_pts)
    assert [i for i, nal_type in enumerate(nal_types) if nal_type == 5] == starts
    return all_pts


@pytest.mark.parametrize("audio", ["opus", None])
def test_ffprobe_accepts_our_segments(tmp_path, audio):
    source = SyntheticSource(SyntheticConfig(width=W, height=H, audio=audio, start_pts=123_456))
    sink = FileSink(tmp_path)
    for chunk in source.chunks(75):
        if chunk.starts_segment:
            sink.start_segment(chunk.segment)
        sink.write(chunk.data)
        if chunk.ends_segment:
            sink.end_segment()
    assert len(sink.paths) == 3
    pts = check_output_segments(sink.paths, expect_audio=audio is not None)
    assert pts == [source.pts(i) for i in range(75)]  # pts carried through, 90 kHz


def test_aac_input_leaves_as_opus_with_pts_carried(tmp_path):
    """RTMP-style input (H.264 with B-frames + AAC) through our decoder and encoder: H.264 + Opus out."""
    segments = ffmpeg_source(tmp_path, "aac")
    frames, audio, _ = decode_bytes(segments)
    sink = FileSink(tmp_path)
    encoder = SegmentEncoder(sink, EncoderSettings())
    for packet in audio:
        encoder.add_audio(packet)
    for frame in frames:
        encoder.encode(frame.rgb, frame.pts, frame.time_base)
    encoder.close()
    assert encoder.stats.audio_packets_out > 0 and encoder.stats.audio_transcode_errors == 0
    pts = check_output_segments(sink.paths, expect_audio=True)
    assert pts == [f.pts for f in frames]
    whole = tmp_path / "whole.ts"
    info = ffprobe(whole, "-show_streams", "-count_packets", "-show_entries",
                   "stream=codec_type,nb_read_packets,duration")  # fmt: skip
    by_type = {s["codec_type"]: s for s in info["streams"]}
    assert float(by_type["audio"]["duration"]) > SECONDS - 0.2  # the audio covers the video, in sync
    assert int(by_type["audio"]["nb_read_packets"]) >= SECONDS * 50 - 5  # 20 ms Opus packets


def ffmpeg_packet_starts(path: Path) -> list[int]:
    """Byte offset of each video packet's first TS packet, in file order (ffprobe's own demuxer)."""
    packets = ffprobe(path, "-select_streams", "v", "-show_entries", "packet=pos", "-show_packets")["packets"]
    return [int(p["pos"]) for p in packets]


@pytest.mark.parametrize("b_frames", [0, 3])
def test_each_frame_of_an_ffmpeg_stream_leaves_once_its_own_bytes_are_in(tmp_path, b_frames):
    """An OBS-style low-latency stream (no B-frames) fed up to just before each next frame: that frame
    is decoded without waiting for the next one's bytes. With B-frames the decoder may hold a few for
    reordering, but frames still leave in display order and nothing is lost."""
    path = tmp_path / "live.ts"
    run(
        "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate={FPS}",
        "-frames:v", str(FPS), "-c:v", "libx264", "-preset", "veryfast", "-g", str(FPS),
        "-bf", str(b_frames), "-pix_fmt", "yuv420p", "-f", "mpegts", str(path),
    )  # fmt: skip
    data = path.read_bytes()
    starts = ffmpeg_packet_starts(path)
    assert len(starts) == FPS
    decoded: list[int] = []
    ready = threading.Condition()

    def on_frame(frame) -> None:
        with ready:
            decoded.append(frame.pts)
            ready.notify_all()

    decoder = StreamDecoder(on_frame, max_fps=None)
    decoder.start()
    try:
        cuts = [0, *starts[1:], len(data)]  # tables and frame 0, then each next frame's packets
        for index, (start, end) in enumerate(zip(cuts, cuts[1:], strict=False)):
            decoder.feed(data[start:end])  # frame `index` whole, and not a byte of the next one
            if b_frames == 0:
                with ready:
                    assert ready.wait_for(lambda n=index + 1: len(decoded) >= n, timeout=5), (
                        f"frame {index} not decoded from its own bytes ({len(decoded)} out)"
                    )
        decoder.end_of_input()
        assert decoder.join(10)
    finally:
        decoder.stop()
    assert len(decoded) == FPS
    assert decoded == sorted(decoded)
    assert all(b - a == 90000 // FPS for a, b in zip(decoded, decoded[1:], strict=False))
