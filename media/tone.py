"""A sine tone encoded to Opus or AAC (ADTS) packets on a 90 kHz timeline, for the synthetic source."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from .adts import adts_header
from .types import MPEGTS_TIME_BASE, AudioPacket, rescale


class ToneSource:
    """Encodes a continuous sine tone; :meth:`packets_until` returns the packets due before a pts."""

    def __init__(self, codec: str, frequency: float = 440.0, start_pts: int = 0) -> None:
        if codec == "opus":
            self._encoder = av.CodecContext.create("libopus", "w")
            self._rate, self._channels, self._format = 48000, 2, "s16"
        elif codec == "aac":
            self._encoder = av.CodecContext.create("aac", "w")
            self._rate, self._channels, self._format = 44100, 1, "fltp"
        else:
            raise ValueError(f"unsupported tone codec {codec!r}")
        self.codec = codec
        self._encoder.sample_rate = self._rate
        self._encoder.layout = "stereo" if self._channels == 2 else "mono"
        self._encoder.format = self._format
        self._encoder.time_base = Fraction(1, self._rate)
        self._encoder.bit_rate = 64000
        self._frequency = frequency
        self._start_pts = start_pts
        self._samples = 0
        self._first_packet_pts: int | None = None
        self._frame_size = 960 if codec == "opus" else 1024

    def _frame(self) -> av.AudioFrame:
        t = (np.arange(self._frame_size) + self._samples) / self._rate
        wave = 0.3 * np.sin(2 * np.pi * self._frequency * t)
        if self._format == "s16":
            pcm = (wave * 32767).astype(np.int16)
            data = np.repeat(pcm, self._channels)[None, :]  # packed: interleaved channels
        else:
            data = np.tile(wave.astype(np.float32), (self._channels, 1))  # planar
        frame = av.AudioFrame.from_ndarray(data, format=self._format, layout=self._encoder.layout.name)
        frame.sample_rate = self._rate
        frame.pts = self._samples
        frame.time_base = Fraction(1, self._rate)
        self._samples += self._frame_size
        return frame

    def packets_until(self, pts_90k: int) -> list[AudioPacket]:
        """Encode the tone up to ``pts_90k`` and return the packets (pts in 90 kHz)."""
        out: list[AudioPacket] = []
        rate = Fraction(1, self._rate)
        while self._start_pts + rescale(self._samples, rate, MPEGTS_TIME_BASE) < pts_90k:
            for packet in self._encoder.encode(self._frame()):
                data = bytes(packet)
                if self.codec == "aac":
                    data = adts_header(len(data), self._rate, self._channels) + data
                if self._first_packet_pts is None:
                    self._first_packet_pts = packet.pts or 0
                # Encoders start at minus their priming delay; count from the first packet instead.
                samples = (packet.pts or 0) - self._first_packet_pts
                out.append(
                    AudioPacket(
                        data=data,
                        pts=self._start_pts + rescale(samples, rate, MPEGTS_TIME_BASE),
                        time_base=MPEGTS_TIME_BASE,
                        codec=self.codec,
                        sample_rate=self._rate,
                        channels=self._channels,
                        duration=rescale(packet.duration or self._frame_size, rate, MPEGTS_TIME_BASE),
                    )
                )
        return out
