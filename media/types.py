"""Plain data objects passed between the decoder, the stream engine and the encoder.

They can cross threads and outlive the containers they came from: the only PyAV object they may hold is
a decoded picture waiting for its RGB conversion (``media.resize.PendingRGB``), reference-counted by
FFmpeg apart from its decoder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

#: MPEG-TS runs on a 90 kHz clock; our encoder writes every timestamp in this base.
MPEGTS_CLOCK_HZ = 90000
MPEGTS_TIME_BASE = Fraction(1, MPEGTS_CLOCK_HZ)

# swscale threads per conversion. PyAV's default (one per CPU) splits every frame across worker threads:
# 40 % more CPU for a 512x512 yuv -> rgb conversion (0.116 vs 0.083 ms), and with a dozen streams on 2
# cores the hand-offs between those threads dominated the decode threads' time (py-spy, 12 streams). The
# streams themselves are the parallelism.
SWSCALE_THREADS = 1


class DeferredPicture(Protocol):
    """Pixels converted on first use (``media.resize.PendingRGB``)."""

    shape: tuple[int, int, int]

    def rgb(self) -> np.ndarray: ...


# uint8 RGB ``[H, W, 3]``, C-contiguous, or the same still to be converted
Picture = Any  # np.ndarray | DeferredPicture


def as_rgb(picture: Picture) -> np.ndarray:
    """A picture's uint8 RGB pixels (converting a deferred one, once)."""
    return picture if isinstance(picture, np.ndarray) else picture.rgb()


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded video frame: ``picture`` is uint8 RGB, HxWx3, C-contiguous, or (from the decoder) the
    same still to be converted on first use, so a frame dropped unseen costs no conversion.

    ``pts`` is in ``time_base`` units as demuxed (90 kHz for MPEG-TS); ``index`` counts every frame the
    decoder emitted since it started (frames dropped by the rate cap do not take an index).
    ``decode_s`` is the codec's time for it (``time.perf_counter`` seconds: its share of the codec call
    that returned it), None where no decoder made it.
    """

    picture: Picture
    pts: int
    time_base: Fraction
    index: int
    decode_s: float | None = None

    @property
    def rgb(self) -> np.ndarray:
        return as_rgb(self.picture)

    @property
    def width(self) -> int:
        return int(self.picture.shape[1])

    @property
    def height(self) -> int:
        return int(self.picture.shape[0])

    @property
    def time(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)


@dataclass(frozen=True)
class AudioPacket:
    """One compressed audio packet kept for passthrough (Opus or AAC as demuxed, AAC with ADTS headers).

    ``codec`` is FFmpeg's codec name (``"opus"``, ``"aac"``); ``sample_rate`` and ``channels`` are those the
    demuxer reported, which the encoder needs to describe or transcode the track.
    """

    data: bytes
    pts: int
    time_base: Fraction
    codec: str
    sample_rate: int
    channels: int
    duration: int = 0

    @property
    def time(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)


def rescale(value: int, source: Fraction, target: Fraction) -> int:
    """Convert a timestamp between time bases, rounding to nearest (as av_rescale_q does)."""
    if source == target:
        return int(value)
    return round(value * source / target)


@dataclass
class DecoderStats:
    """Counters of what the decoder saw; read from any thread (plain ints, updated by the decode thread)."""

    bytes_in: int = 0
    bytes_dropped: int = 0
    video_packets: int = 0
    audio_packets: int = 0
    decoded: int = 0
    emitted: int = 0
    dropped_by_rate: int = 0
    #: video packets that never became a frame (decode errors, damaged data) plus frames the decoder flagged
    #: corrupt; while running it also holds the frames still inside the decoder (none for low-delay streams)
    corrupt_skipped: int = 0
    #: frames whose data never arrived as packets (a gap in pts, e.g. a truncated segment)
    frames_missing: int = 0
    demux_restarts: int = 0
    resolution_changes: int = 0
    pts_resets: int = 0
    callback_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
