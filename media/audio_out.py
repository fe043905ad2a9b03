"""Audio side of the encoder: a bounded, thread-safe buffer of input packets and the AAC -> Opus transcoder.

The Livepeer gateway accepts only Opus next to H.264, so Opus input is copied as is and AAC input (RTMP
ingest) is decoded, resampled to 48 kHz and encoded with libopus, keeping the input's 90 kHz timeline.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from fractions import Fraction

import av

from .types import MPEGTS_TIME_BASE, AudioPacket, rescale

logger = logging.getLogger(__name__)

OPUS_RATE = 48000
_OPUS_TIME_BASE = Fraction(1, OPUS_RATE)
# A gap or jump in input audio timestamps beyond this restarts the transcoder's timeline (source restart).
_RESYNC_TICKS = 9000  # 0.1 s at 90 kHz


class AudioBuffer:
    """Thread-safe FIFO of :class:`AudioPacket` (pts rescaled to 90 kHz), bounded by dropping the oldest."""

    def __init__(self, max_packets: int = 500) -> None:
        self._packets: deque[AudioPacket] = deque()
        self._max = max_packets
        self._lock = threading.Lock()
        self.dropped = 0
        self.received = 0
        #: the newest packet ever put (describes the track, and tells whether audio is still flowing)
        self.last: AudioPacket | None = None

    def put(self, packet: AudioPacket) -> None:
        if packet.time_base != MPEGTS_TIME_BASE:
            packet = AudioPacket(
                data=packet.data,
                pts=rescale(packet.pts, packet.time_base, MPEGTS_TIME_BASE),
                time_base=MPEGTS_TIME_BASE,
                codec=packet.codec,
                sample_rate=packet.sample_rate,
                channels=packet.channels,
                duration=rescale(packet.duration, packet.time_base, MPEGTS_TIME_BASE),
            )
        with self._lock:
            self.received += 1
            self.last = packet
            self._packets.append(packet)
            while len(self._packets) > self._max:
                self._packets.popleft()
                self.dropped += 1

    @property
    def pending(self) -> int:
        return len(self._packets)

    def take_until(self, pts_90k: int | None, limit: int | None = None) -> list[AudioPacket]:
        """Remove and return packets with ``pts < pts_90k`` (all when ``None``), at most ``limit``."""
        taken: list[AudioPacket] = []
        with self._lock:
            while self._packets and (pts_90k is None or self._packets[0].pts < pts_90k):
                if limit is not None and len(taken) >= limit:
                    break
                taken.append(self._packets.popleft())
        return taken

    def discard_after(self, pts_90k: int) -> int:
        """Drop queued packets later than ``pts_90k`` (an old timeline after a source restart)."""
        with self._lock:
            kept = deque(p for p in self._packets if p.pts <= pts_90k)
            count = len(self._packets) - len(kept)
            self._packets = kept
            self.dropped += count
            return count

    def discard_before(self, pts_90k: int) -> int:
        with self._lock:
            count = 0
            while self._packets and self._packets[0].pts < pts_90k:
                self._packets.popleft()
                count += 1
            self.dropped += count
            return count


class EncodedAudio:
    """One audio packet ready to mux: payload, pts and duration in 90 kHz."""

    __slots__ = ("data", "duration", "pts")

    def __init__(self, data: bytes, pts: int, duration: int) -> None:
        self.data = data
        self.pts = pts
        self.duration = duration


class AacToOpus:
    """Stateful AAC (ADTS) -> Opus transcoder keeping the input's 90 kHz timeline.

    Output pts = pts of the first input packet since the last resync + samples produced, so Opus frames
    (960 samples) line up with the AAC input however the frame sizes differ.
    """

    def __init__(self, channels: int, bitrate: int = 64000) -> None:
        self.channels = 2 if channels >= 2 else 1
        self._bitrate = bitrate
        self._decoder: av.CodecContext | None = None
        self._resampler: av.AudioResampler | None = None
        self._encoder: av.CodecContext | None = None
        self._anchor_90k: int | None = None
        self._expected_90k: int | None = None
        self._samples_out = 0
        self.errors = 0

    def _reset(self) -> None:
        """Fresh decoder, resampler and encoder, and a new timeline anchor."""
        layout = "stereo" if self.channels == 2 else "mono"
        self._decoder = av.CodecContext.create("aac", "r")
        self._resampler = av.AudioResampler(format="s16", layout=layout, rate=OPUS_RATE, frame_size=960)
        encoder = av.CodecContext.create("libopus", "w")
        encoder.sample_rate = OPUS_RATE
        encoder.layout = layout
        encoder.format = "s16"
        encoder.time_base = _OPUS_TIME_BASE
        encoder.bit_rate = self._bitrate
        self._encoder = encoder
        self._anchor_90k = None
        self._samples_out = 0

    def transcode(self, packet: AudioPacket) -> list[EncodedAudio]:
        """Feed one AAC packet (pts in 90 kHz); returns the Opus packets that became ready."""
        if self._expected_90k is not None and abs(packet.pts - self._expected_90k) > _RESYNC_TICKS:
            logger.info(
                "AAC timeline jumped from %d to %d; restarting the Opus transcoder",
                self._expected_90k,
                packet.pts,
            )
            self._decoder = None
        if self._decoder is None or self._resampler is None or self._encoder is None:
            self._reset()
        if self._anchor_90k is None:
            self._anchor_90k = packet.pts
        self._expected_90k = packet.pts + packet.duration if packet.duration else None
        out: list[EncodedAudio] = []
        try:
            frames = self._decoder.decode(av.Packet(packet.data))
        except av.FFmpegError as exc:
            self.errors += 1
            logger.debug("skipping undecodable AAC packet: %s", exc)
            return out
        return self._encode_frames(frames)

    def _encode_frames(self, frames: list[av.AudioFrame]) -> list[EncodedAudio]:
        out: list[EncodedAudio] = []
        if self._resampler is None or self._encoder is None:
            return out
        for frame in frames:
            frame.pts = None  # we keep our own sample count; the resampler re-chunks anyway
            for chunk in self._resampler.resample(frame):
                chunk.pts = self._samples_out
                chunk.time_base = _OPUS_TIME_BASE
                self._samples_out += chunk.samples
                out.extend(self._packets(self._encoder.encode(chunk)))
        return out

    def _packets(self, packets: list[av.Packet]) -> list[EncodedAudio]:
        anchor = self._anchor_90k or 0
        result = []
        for packet in packets:
            pts = packet.pts or 0  # negative for the first frame (encoder pre-skip): kept, stays in order
            result.append(
                EncodedAudio(
                    bytes(packet),
                    anchor + rescale(pts, _OPUS_TIME_BASE, MPEGTS_TIME_BASE),
                    rescale(packet.duration or 960, _OPUS_TIME_BASE, MPEGTS_TIME_BASE),
                )
            )
        return result


def add_opus_stream(container: av.container.OutputContainer, channels: int) -> av.audio.stream.AudioStream:
    """Add an Opus track to a segment container.

    It is declared through a libopus encoder context (opened by PyAV when the header is written) because
    that fills in what the TS muxer needs (channel count, OpusHead); packets muxed into it come from the
    passthrough copy or from :class:`AacToOpus`, never from this context.
    """
    layout = "stereo" if channels >= 2 else "mono"
    stream = container.add_stream("libopus", rate=OPUS_RATE, layout=layout)
    stream.codec_context.format = "s16"
    return stream


def add_aac_stream(
    container: av.container.OutputContainer, sample_rate: int, channels: int
) -> av.stream.Stream:
    """Add an AAC track taking ADTS packets as demuxed (used to produce AAC test input only)."""
    layout = "stereo" if channels >= 2 else "mono"
    return container.add_stream("aac", rate=sample_rate or 48000, layout=layout)
