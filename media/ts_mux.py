"""H.264 access units in, MPEG-TS bytes out, without re-encoding: the browser camera's ingest.

The browser encodes (WebCodecs ``VideoEncoder``, Annex B byte stream) and sends one access unit at a time;
here PyAV's MPEG-TS muxer wraps each one into PES/TS packets as it arrives. Every keyframe starts a new
segment (a new muxer, so each trickle segment opens with PAT/PMT and an IDR and decodes on its own).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import av

MPEGTS_TIME_BASE = Fraction(1, 90_000)
# Write every packet through at once: the default AVIO buffer would hold ~32 KiB (several frames) back.
_MUX_OPTIONS = {"flush_packets": "1"}


@dataclass(frozen=True)
class MuxedBytes:
    """TS bytes for one access unit; ``segment_start`` when they open a new segment (a keyframe)."""

    data: bytes
    segment_start: bool


class AccessUnitMuxer:
    """Wraps Annex B H.264 access units into MPEG-TS, one segment per keyframe (GOP).

    ``push(data, timestamp_us, keyframe)`` returns the TS bytes produced for that unit. Delta units before
    the first keyframe are dropped (nothing could decode them). Timestamps are the sender's microseconds;
    the first keyframe's becomes zero.
    """

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.units_in = 0
        self.units_dropped = 0
        self.segments = 0
        self._origin_us: int | None = None
        self._last_pts = -1
        self._buffer = io.BytesIO()
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None

    def push(self, data: bytes, timestamp_us: int, keyframe: bool) -> MuxedBytes | None:
        self.units_in += 1
        if keyframe:
            self._close_container()
            self._open_container()
        if self._container is None or self._stream is None:
            self.units_dropped += 1
            return None
        if self._origin_us is None:
            self._origin_us = timestamp_us
        pts = (timestamp_us - self._origin_us) * 9 // 100  # us -> 90 kHz
        pts = max(pts, self._last_pts + 1)  # strictly increasing, whatever the sender's clock did
        self._last_pts = pts
        packet = av.Packet(data)
        packet.stream = self._stream
        packet.time_base = MPEGTS_TIME_BASE
        packet.pts = packet.dts = pts
        packet.is_keyframe = keyframe
        self._container.mux(packet)
        return MuxedBytes(self._take(), segment_start=keyframe)

    def close(self) -> bytes:
        """End the current segment; returns the muxer's trailing bytes (may be empty)."""
        self._close_container()
        return self._take()

    def _open_container(self) -> None:
        self._container = av.open(self._buffer, mode="w", format="mpegts", options=dict(_MUX_OPTIONS))
        stream = self._container.add_stream("h264")
        stream.width = self.width
        stream.height = self.height
        stream.time_base = MPEGTS_TIME_BASE
        self._stream = stream
        self.segments += 1

    def _close_container(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._stream = None

    def _take(self) -> bytes:
        data = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return data
