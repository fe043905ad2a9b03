"""Synthetic video for the benchmarks: frames that carry their own index in pixels, pre-encoded to H.264 TS.

The index is written as 16 bits of 16x16 black/white macroblocks on the second macroblock row, framed by a
white and a black marker block, so it survives x264 at any sane quality, survives a colour inversion (the
markers say which way round to read) and is read back from decoded RGB in microseconds. Identifying frames
by pixels rather than by pts means the measurement does not trust the pipeline under test to keep pts.

Segments are encoded before a case starts (so the gateway only writes bytes while the clock runs) and
split per frame: ``EncodedSegment.frame_chunks[i]`` holds exactly the TS bytes that the muxer wrote for
that frame, so the gateway can timestamp the moment each frame's bytes enter the relay.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BLOCK = 16
INDEX_BITS = 16
INDEX_ROW = 1  # macroblock row holding the index (row 0 is left to the picture edge)
SOURCE_X264_OPTIONS = {"preset": "superfast", "tune": "zerolatency"}


def _block_slice(column: int) -> tuple[slice, slice]:
    y0 = INDEX_ROW * BLOCK
    x0 = column * BLOCK
    # the inner 8x8 of each block: its edges blur into the neighbours after lossy coding
    return slice(y0 + 4, y0 + BLOCK - 4), slice(x0 + 4, x0 + BLOCK - 4)


def stamp_index(rgb: np.ndarray, index: int) -> None:
    """Write ``index`` (mod 2**16) into ``rgb`` (HxWx3 uint8, at least 288x32) in place."""
    if rgb.shape[1] < (INDEX_BITS + 2) * BLOCK or rgb.shape[0] < (INDEX_ROW + 1) * BLOCK:
        minimum = f"{(INDEX_BITS + 2) * BLOCK}x{(INDEX_ROW + 1) * BLOCK}"
        raise ValueError(f"a stamped frame needs at least {minimum} pixels")
    y0 = INDEX_ROW * BLOCK
    row = rgb[y0 : y0 + BLOCK]
    row[:, 0:BLOCK] = 255  # marker: white
    for bit in range(INDEX_BITS):
        x0 = (bit + 1) * BLOCK
        row[:, x0 : x0 + BLOCK] = 255 if (index >> bit) & 1 else 0
    x_end = (INDEX_BITS + 1) * BLOCK
    row[:, x_end : x_end + BLOCK] = 0  # marker: black


def read_index(image: np.ndarray, source_size: tuple[int, int] | None = None) -> int | None:
    """The index stamped by :func:`stamp_index`, or None when the markers are not there.

    ``image`` is HxWxC (any channel count, e.g. a luma plane as HxWx1). When the pipeline rescaled the
    picture, ``source_size`` (width, height) of the stamped source maps the blocks to where they are now.
    """
    scale_x = image.shape[1] / source_size[0] if source_size else 1.0
    scale_y = image.shape[0] / source_size[1] if source_size else 1.0
    too_narrow = image.shape[1] < (INDEX_BITS + 2) * BLOCK * scale_x
    if too_narrow or image.shape[0] < (INDEX_ROW + 1) * BLOCK * scale_y:
        return None  # too small to carry the index

    def level(column: int) -> float:
        ys, xs = _block_slice(column)
        rows = slice(int(ys.start * scale_y), max(int(ys.start * scale_y) + 1, int(ys.stop * scale_y)))
        cols = slice(int(xs.start * scale_x), max(int(xs.start * scale_x) + 1, int(xs.stop * scale_x)))
        return float(image[rows, cols].mean())

    white, black = level(0), level(INDEX_BITS + 1)
    if abs(white - black) < 96:
        return None
    inverted = white < black
    threshold = (white + black) / 2
    value = 0
    for bit in range(INDEX_BITS):
        on = level(bit + 1) > threshold
        if on != inverted:
            value |= 1 << bit
    return value


def synthetic_frame(width: int, height: int, index: int, fps: float) -> np.ndarray:
    """A smooth gradient with a moving box (the content of trickle-protocol.md B11), index stamped."""
    t = index / fps
    ys = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    xs = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[..., 0] = ((xs + 40 * t) % 256).astype(np.uint8)
    rgb[..., 1] = np.broadcast_to(ys, (height, width)).astype(np.uint8)
    rgb[..., 2] = ((xs + ys) / 2).astype(np.uint8)
    box = max(32, min(width, height) // 6)
    bx = int((width - box) * (0.5 + 0.5 * np.sin(2 * np.pi * t / 3.0)))
    by = int((height - box) * (0.5 + 0.5 * np.cos(2 * np.pi * t / 4.0)))
    rgb[by : by + box, bx : bx + box] = (250, 250, 40)
    stamp_index(rgb, index)
    return rgb


@dataclass
class EncodedSegment:
    """One trickle segment (whole GOPs, starting with a keyframe) split into per-frame byte chunks."""

    first_index: int
    frame_chunks: list[bytes] = field(default_factory=list)

    @property
    def data(self) -> bytes:
        return b"".join(self.frame_chunks)

    @property
    def frame_count(self) -> int:
        return len(self.frame_chunks)


@dataclass
class EncodedSource:
    """A pre-encoded synthetic stream: ``segments`` in order, ``fps`` frames per second."""

    width: int
    height: int
    fps: float
    segments: list[EncodedSegment]

    @property
    def frame_count(self) -> int:
        return sum(segment.frame_count for segment in self.segments)

    @property
    def total_bytes(self) -> int:
        return sum(len(chunk) for segment in self.segments for chunk in segment.frame_chunks)


class _ChunkRecorder(io.RawIOBase):
    """A write-only file that collects what the muxer writes since the last ``take()``."""

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._pending.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        chunk = b"".join(self._pending)
        self._pending.clear()
        return chunk


def encode_segment(width: int, height: int, fps: float, first_index: int, frame_count: int) -> EncodedSegment:
    """Encode ``frame_count`` frames from ``first_index`` into one self-contained MPEG-TS segment."""
    recorder = _ChunkRecorder()
    # flush_packets: the muxer hands each frame's packets to write() at once, so chunks align with frames
    container = av.open(recorder, mode="w", format="mpegts", options={"flush_packets": "1"})
    rate = Fraction(fps).limit_denominator(1001)
    stream = container.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.time_base = 1 / rate
    stream.options = {**SOURCE_X264_OPTIONS, "g": str(frame_count), "keyint_min": str(frame_count)}
    segment = EncodedSegment(first_index=first_index)
    for offset in range(frame_count):
        index = first_index + offset
        frame = av.VideoFrame.from_ndarray(synthetic_frame(width, height, index, fps), format="rgb24")
        frame.pts = index
        frame.time_base = stream.codec_context.time_base
        for packet in stream.encode(frame):
            container.mux(packet)
        segment.frame_chunks.append(recorder.take())
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    tail = recorder.take()
    if tail:  # end-of-stream bytes (the last PES flush) travel with the last frame
        segment.frame_chunks[-1] += tail
    return segment


def encode_source(
    width: int, height: int, fps: float, duration_s: float, segment_s: float = 1.0
) -> EncodedSource:
    """Encode ``duration_s`` of synthetic video at ``fps`` into segments of ``segment_s`` (one GOP each)."""
    total = max(1, round(duration_s * fps))
    per_segment = max(1, round(segment_s * fps))
    segments = [
        encode_segment(width, height, fps, first, min(per_segment, total - first))
        for first in range(0, total, per_segment)
    ]
    return EncodedSource(width=width, height=height, fps=fps, segments=segments)


def save_source(source: EncodedSource, path: Path) -> None:
    """Write ``source`` as a JSON index next to one binary blob (a cache for repeated benchmark runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    index = {
        "width": source.width,
        "height": source.height,
        "fps": source.fps,
        "segments": [
            {"first_index": s.first_index, "chunk_sizes": [len(c) for c in s.frame_chunks]}
            for s in source.segments
        ],
    }
    path.with_suffix(".bin").write_bytes(b"".join(s.data for s in source.segments))
    path.with_suffix(".json").write_text(json.dumps(index))


def load_source(path: Path) -> EncodedSource | None:
    """Read what :func:`save_source` wrote; None when absent or inconsistent."""
    try:
        index = json.loads(path.with_suffix(".json").read_text())
        blob = path.with_suffix(".bin").read_bytes()
    except (OSError, ValueError):
        return None
    segments = []
    offset = 0
    for entry in index["segments"]:
        segment = EncodedSegment(first_index=entry["first_index"])
        for size in entry["chunk_sizes"]:
            segment.frame_chunks.append(blob[offset : offset + size])
            offset += size
        segments.append(segment)
    if offset != len(blob):
        return None
    return EncodedSource(index["width"], index["height"], index["fps"], segments)


def cached_source(
    cache_dir: Path, width: int, height: int, fps: float, duration_s: float, segment_s: float = 1.0
) -> EncodedSource:
    """:func:`encode_source`, reusing an earlier encoding of the same parameters and the same source code."""
    version = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]
    path = cache_dir / f"source-{width}x{height}-{fps:g}fps-{duration_s:g}s-{segment_s:g}-{version}"
    source = load_source(path)
    if source is None:
        source = encode_source(width, height, fps, duration_s, segment_s)
        save_source(source, path)
    return source
