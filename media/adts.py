"""Just enough of the AAC ADTS header: read it to time and describe AAC packets demuxed from MPEG-TS, and
write it in front of raw AAC frames (the synthetic source's AAC track).

With short stream probing the demuxer may not know the AAC sample rate yet, and its parser then leaves the
second and later frames of a PES without timestamps or duration; the ADTS header carries both facts.
"""

from __future__ import annotations

from typing import NamedTuple

#: The sampling-frequency index of the ADTS header (ISO/IEC 14496-3), index -> Hz.
ADTS_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


class AdtsInfo(NamedTuple):
    sample_rate: int
    channels: int
    samples: int


def parse_adts(data: bytes) -> AdtsInfo | None:
    """Describe an ADTS frame, or ``None`` if ``data`` does not start with a valid ADTS header."""
    if len(data) < 7 or data[0] != 0xFF or (data[1] & 0xF0) != 0xF0:
        return None
    rate_index = (data[2] >> 2) & 0x0F
    if rate_index >= len(ADTS_SAMPLE_RATES):
        return None
    channels = ((data[2] & 0x01) << 2) | (data[3] >> 6)
    blocks = (data[6] & 0x03) + 1
    return AdtsInfo(ADTS_SAMPLE_RATES[rate_index], channels, 1024 * blocks)


def adts_header(payload_size: int, sample_rate: int, channels: int) -> bytes:
    """7-byte ADTS header (MPEG-4 AAC LC, no CRC) for one raw AAC frame of ``payload_size`` bytes."""
    length = payload_size + 7
    rate_index = ADTS_SAMPLE_RATES.index(sample_rate)
    return bytes(
        (
            0xFF,
            0xF1,
            (1 << 6) | (rate_index << 2) | (channels >> 2),
            ((channels & 3) << 6) | (length >> 11),
            (length >> 3) & 0xFF,
            ((length & 7) << 5) | 0x1F,
            0xFC,
        )
    )
