"""JPEG frames in, H.264 MPEG-TS out: the browser camera's fallback where WebCodecs cannot encode H.264.

The browser sends JPEG stills (a canvas can always make those); here each is decoded and fed to our
``SegmentEncoder`` (libx264, one segment per second). Costs server CPU, which is why H.264 from the browser
is the first choice. Call from one thread at a time (the encoder's rule).
"""

from __future__ import annotations

from fractions import Fraction

import av

from .encoder import EncoderSettings, SegmentEncoder
from .ts_mux import MuxedBytes

MICROSECONDS = Fraction(1, 1_000_000)


class _CollectingSink:
    def __init__(self) -> None:
        self.out: list[MuxedBytes] = []
        self._segment_start = False

    def start_segment(self, index: int) -> None:
        self._segment_start = True

    def write(self, data: bytes) -> None:
        self.out.append(MuxedBytes(data, segment_start=self._segment_start))
        self._segment_start = False

    def end_segment(self) -> None:
        pass


class JpegToTs:
    """``push(jpeg, timestamp_us)`` returns the TS bytes it produced (a new segment flagged)."""

    def __init__(self, fps: float = 30.0) -> None:
        self._sink = _CollectingSink()
        self._encoder = SegmentEncoder(self._sink, EncoderSettings(fps=fps, audio=False, preset="ultrafast"))
        self._decoder = av.CodecContext.create("mjpeg", "r")
        self._origin_us: int | None = None
        self._last_us = -1

    def push(self, jpeg: bytes, timestamp_us: int) -> list[MuxedBytes]:
        """Raises ``ValueError`` when ``jpeg`` is not a JPEG image."""
        try:
            frames = self._decoder.decode(av.Packet(jpeg))
        except av.FFmpegError as err:
            raise ValueError(f"not a JPEG image: {err}") from err
        for frame in frames:
            if self._origin_us is None:
                self._origin_us = timestamp_us
            stamp = max(timestamp_us - self._origin_us, self._last_us + 1)
            self._last_us = stamp
            self._encoder.encode(frame.to_ndarray(format="rgb24"), stamp, MICROSECONDS)
        return self._take()

    def close(self) -> list[MuxedBytes]:
        self._encoder.close()
        return self._take()

    def _take(self) -> list[MuxedBytes]:
        out, self._sink.out = self._sink.out, []
        return out
