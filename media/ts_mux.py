"""H.264 access units and Opus packets in, MPEG-TS bytes out, without re-encoding: the camera ingest.

The browser encodes (WebCodecs ``VideoEncoder``, Annex B byte stream; ``AudioEncoder``, Opus) and sends one
access unit or Opus packet at a time; here PyAV's MPEG-TS muxer wraps each one into PES/TS packets as it
arrives. Every keyframe starts a new segment (a new muxer, so each trickle segment opens with PAT/PMT and an
IDR and decodes on its own); the Opus packets go into whichever segment is open, on the video's clock.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import av

MPEGTS_TIME_BASE = Fraction(1, 90_000)
OPUS_SAMPLE_RATE = 48_000
# Write every packet through at once: the default AVIO buffer would hold ~32 KiB (several frames) back. With
# a sound track libavformat interleaves by timestamp, holding a packet until the other track catches up;
# max_interleave_delta (µs) bounds that wait, so a microphone that falls silent never stalls the video.
_MUX_OPTIONS = {"flush_packets": "1", "max_interleave_delta": "200000"}


@dataclass(frozen=True)
class MuxedBytes:
    """TS bytes for one access unit; ``segment_start`` when they open a new segment (a keyframe), and then
    ``previous_tail``: the bytes that end the previous segment (packets the interleaver still held)."""

    data: bytes
    segment_start: bool
    previous_tail: bytes = b""


class AccessUnitMuxer:
    """Wraps Annex B H.264 access units into MPEG-TS, one segment per keyframe (GOP).

    ``push(data, timestamp_us, keyframe)`` returns the TS bytes produced for that unit. Delta units before
    the first keyframe are dropped (nothing could decode them). Timestamps are the sender's microseconds;
    the first keyframe's becomes zero.

    With ``audio_channels`` (1 or 2) every segment also carries an Opus track: ``push_audio(data,
    timestamp_us)`` muxes one Opus packet (as encoded, 48 kHz) on the same clock as the video. Packets
    before the first keyframe, or stamped before it, are dropped.
    """

    def __init__(self, width: int, height: int, audio_channels: int = 0) -> None:
        if audio_channels not in (0, 1, 2):
            raise ValueError("audio_channels must be 0, 1 or 2")
        self.width = width
        self.height = height
        self.audio_channels = audio_channels
        self.units_in = 0
        self.units_dropped = 0
        self.audio_in = 0
        self.audio_dropped = 0
        self.segments = 0
        self._origin_us: int | None = None
        self._last_pts = -1
        self._last_audio_pts = -1
        self._buffer = io.BytesIO()
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._audio: av.audio.stream.AudioStream | None = None

    def push(self, data: bytes, timestamp_us: int, keyframe: bool) -> MuxedBytes | None:
        self.units_in += 1
        tail = b""
        if keyframe:
            self._close_container()
            tail = self._take()
            self._open_container()
        if self._container is None or self._stream is None:
            self.units_dropped += 1
            return None
        if self._origin_us is None:
            self._origin_us = timestamp_us
        pts = (timestamp_us - self._origin_us) * 9 // 100  # us -> 90 kHz
        pts = max(pts, self._last_pts + 1)  # strictly increasing, whatever the sender's clock did
        self._last_pts = pts
        self._mux(self._stream, data, pts, keyframe)
        return MuxedBytes(self._take(), segment_start=keyframe, previous_tail=tail)

    def push_audio(self, data: bytes, timestamp_us: int) -> bytes | None:
        """Mux one Opus packet into the open segment; returns the TS bytes produced (None when dropped)."""
        self.audio_in += 1
        if self._audio is None or self._origin_us is None or timestamp_us < self._origin_us:
            self.audio_dropped += 1
            return None
        pts = (timestamp_us - self._origin_us) * 9 // 100
        if pts <= self._last_audio_pts:  # a sender's clock that went back: drop rather than break the track
            self.audio_dropped += 1
            return None
        self._last_audio_pts = pts
        self._mux(self._audio, data, pts, True)
        return self._take()

    def _mux(self, stream: av.stream.Stream, data: bytes, pts: int, keyframe: bool) -> None:
        if self._container is None:
            return
        packet = av.Packet(data)
        packet.stream = stream
        packet.time_base = MPEGTS_TIME_BASE
        packet.pts = packet.dts = pts
        packet.is_keyframe = keyframe
        self._container.mux(packet)

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
        if self.audio_channels:
            audio = self._container.add_stream("libopus", rate=OPUS_SAMPLE_RATE)
            audio.codec_context.layout = "stereo" if self.audio_channels == 2 else "mono"
            audio.time_base = MPEGTS_TIME_BASE
            self._audio = audio
        self.segments += 1

    def _close_container(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._stream = None
        self._audio = None

    def _take(self) -> bytes:
        data = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return data
