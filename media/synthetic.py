"""Deterministic synthetic source: a moving test pattern whose frame index survives a lossy codec, plus an
optional tone (Opus or AAC), encoded by our own :class:`SegmentEncoder` into trickle-ready TS segments.

Used by the demo, the UI's local test source, benchmarks and tests. The pattern:

- a top strip of ``INDEX_BITS`` black/white cells holding the frame index in binary (most significant bit
  on the left), readable back with :func:`read_frame_index` after H.264 at normal quality;
- below it, a smooth gradient that scrolls with the frame index, a blue level that changes per frame
  (so every frame index has a distinct colour) and a white square moving left to right.

The pattern needs at least ``INDEX_BITS * 4`` pixels of width for the strip to survive compression; 128 or
more is comfortable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .encoder import EncoderSettings, SegmentEncoder
from .tone import ToneSource
from .types import MPEGTS_CLOCK_HZ, MPEGTS_TIME_BASE

logger = logging.getLogger(__name__)

INDEX_BITS = 16


def _strip_height(height: int) -> int:
    return max(8, (height // 8) & ~7)


def make_test_frame(index: int, width: int, height: int) -> np.ndarray:
    """The pattern for frame ``index`` as uint8 RGB HxWx3 (deterministic: same inputs, same pixels)."""
    if width < INDEX_BITS or height < 16:
        raise ValueError(f"test pattern needs at least {INDEX_BITS}x16 pixels, got {width}x{height}")
    # Smooth content (a scrolling sine, a soft moving blob) so default H.264 keeps PSNR well above 35 dB.
    xs = np.arange(width, dtype=np.float32)
    ys = np.arange(height, dtype=np.float32)
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:, :, 0] = (128 + 100 * np.sin(2 * np.pi * (xs + 3 * index) / width)).astype(np.uint8)[None, :]
    frame[:, :, 1] = (40 + ys * 180 / max(1, height - 1)).astype(np.uint8)[:, None]
    frame[:, :, 2] = (index * 37) % 256  # a distinct colour per frame index
    radius = max(4.0, height / 8)
    cx = radius + (index * 4) % max(1, int(width - 2 * radius))
    cy = (height + _strip_height(height)) / 2
    blob = np.exp(-(((xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2) / (2 * radius**2)))
    frame[:, :, 1] = np.maximum(frame[:, :, 1], (blob * 255).astype(np.uint8))
    strip = _strip_height(height)
    frame[:strip] = 0
    cell = width // INDEX_BITS
    for bit in range(INDEX_BITS):
        if (index >> (INDEX_BITS - 1 - bit)) & 1:
            frame[:strip, bit * cell : (bit + 1) * cell] = 255
    return frame


def read_frame_index(rgb: np.ndarray) -> int:
    """Read back the frame index of a (possibly lossy, same-size) :func:`make_test_frame` image."""
    height, width = rgb.shape[:2]
    strip = _strip_height(height)
    cell = width // INDEX_BITS
    value = 0
    rows = slice(strip // 4, strip - strip // 4)
    for bit in range(INDEX_BITS):
        cols = slice(bit * cell + cell // 4, (bit + 1) * cell - cell // 4)
        level = float(rgb[rows, cols].mean())
        value = (value << 1) | (1 if level >= 128 else 0)
    return value


@dataclass(frozen=True)
class SyntheticConfig:
    """What the synthetic source produces."""

    width: int = 256
    height: int = 256
    fps: float = 30.0
    segment_seconds: float = 1.0
    audio: str | None = "opus"  # "opus", "aac" (ADTS, 44.1 kHz, as RTMP ingest brings) or None
    preset: str = "superfast"
    start_pts: int = 0  # 90 kHz pts of frame 0
    tone_hz: float = 440.0


@dataclass(frozen=True)
class SyntheticChunk:
    """Bytes of one output segment produced while encoding one frame (publish them in order).

    ``media_time`` is the frame's time since frame 0 in seconds: a real-time publisher sends the chunk
    when that much wall time has passed since it sent the first.
    """

    segment: int
    data: bytes
    starts_segment: bool
    ends_segment: bool
    frame_index: int
    pts: int
    media_time: float


@dataclass(frozen=True)
class SyntheticSegment:
    """One complete TS segment: its bytes, the pts of its first frame and how many frames it holds."""

    index: int
    data: bytes
    first_pts: int
    frame_count: int


@dataclass
class _EventSink:
    events: list[tuple[str, int, bytes]] = field(default_factory=list)
    current: int = -1

    def start_segment(self, index: int) -> None:
        self.current = index
        self.events.append(("start", index, b""))

    def write(self, data: bytes) -> None:
        self.events.append(("data", self.current, data))

    def end_segment(self) -> None:
        self.events.append(("end", self.current, b""))


class SyntheticSource:
    """Encodes the test pattern (and tone) with our encoder, frame by frame, into TS segment chunks."""

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        self.config = config or SyntheticConfig()
        if self.config.audio not in (None, "opus", "aac"):
            raise ValueError(f"audio must be 'opus', 'aac' or None, got {self.config.audio!r}")
        self._frame_ticks = Fraction(MPEGTS_CLOCK_HZ) / Fraction(self.config.fps).limit_denominator(1001)

    def pts(self, index: int) -> int:
        """90 kHz pts of frame ``index``."""
        return self.config.start_pts + round(index * self._frame_ticks)

    def frame(self, index: int) -> np.ndarray:
        """The uncompressed pattern of frame ``index``."""
        return make_test_frame(index, self.config.width, self.config.height)

    def chunks(self, frame_count: int | None = None) -> Iterator[SyntheticChunk]:
        """Encode frames 0.. (forever when ``frame_count`` is None) and yield the bytes as they come."""
        cfg = self.config
        sink = _EventSink()
        settings = EncoderSettings(
            segment_seconds=cfg.segment_seconds,
            preset=cfg.preset,
            fps=cfg.fps,
            audio=cfg.audio is not None,
            transcode_aac=False,
        )
        encoder = SegmentEncoder(sink, settings)
        tone = ToneSource(cfg.audio, cfg.tone_hz, cfg.start_pts) if cfg.audio else None
        index = 0
        try:
            while frame_count is None or index < frame_count:
                pts = self.pts(index)
                if tone is not None:
                    for packet in tone.packets_until(self.pts(index + 1)):
                        encoder.add_audio(packet)
                encoder.encode(self.frame(index), pts, MPEGTS_TIME_BASE)
                yield from self._drain(sink, index, pts)
                index += 1
        finally:
            encoder.close()
        yield from self._drain(sink, max(0, index - 1), self.pts(max(0, index - 1)))

    def segments(self, frame_count: int) -> list[SyntheticSegment]:
        """Encode ``frame_count`` frames and return the complete segments."""
        segments: list[SyntheticSegment] = []
        data = bytearray()
        first_pts = 0
        frames: set[int] = set()
        for chunk in self.chunks(frame_count):
            if chunk.starts_segment:
                data, first_pts, frames = bytearray(), chunk.pts, set()
            data += chunk.data
            frames.add(chunk.frame_index)
            if chunk.ends_segment:
                segments.append(SyntheticSegment(chunk.segment, bytes(data), first_pts, len(frames)))
        return segments

    def _drain(self, sink: _EventSink, frame_index: int, pts: int) -> Iterator[SyntheticChunk]:
        """Turn the sink's events since the last call into chunks, one per segment touched."""
        media_time = float((pts - self.config.start_pts) * MPEGTS_TIME_BASE)
        pending: _Pending | None = None
        for kind, segment, data in sink.events:
            if kind == "start" or pending is None or pending.segment != segment:
                pending = _Pending(segment, kind == "start")
            pending.data += data
            if kind == "end":
                yield pending.chunk(True, sink.current, frame_index, pts, media_time)
                pending = None
        sink.events.clear()
        if pending is not None:
            yield pending.chunk(False, sink.current, frame_index, pts, media_time)


@dataclass
class _Pending:
    segment: int
    starts: bool
    data: bytearray = field(default_factory=bytearray)

    def chunk(
        self, ends: bool, current: int, frame_index: int, pts: int, media_time: float
    ) -> SyntheticChunk:
        # A segment closed by this frame's cut holds the previous frame, not this one.
        owner = frame_index if self.segment == current else frame_index - 1
        return SyntheticChunk(self.segment, bytes(self.data), self.starts, ends, owner, pts, media_time)


def psnr(decoded: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two uint8 images of the same shape (inf if identical)."""
    if decoded.shape != reference.shape:
        raise ValueError(f"shapes differ: {decoded.shape} vs {reference.shape}")
    mse = float(np.mean((decoded.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))
