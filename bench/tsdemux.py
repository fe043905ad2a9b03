"""A minimal incremental MPEG-TS demuxer for the benchmark's receiving side (H.264 video only).

libavformat's demuxer hands a video frame out only when the *next* frame begins: the muxer writes video PES
packets without a length, and the H.264 parser then waits for the next access unit as well, so a live
receiver built on it sees every frame about two frame intervals late (measured: 200 ms at 10 fps). A
benchmark must not add that to the latency it reports, so this demuxer closes a PES as soon as it can be
known complete:

* the PES header carries a length and that many bytes arrived, or
* the TS packet is padded with adaptation-field stuffing (the muxer pads only the last packet of a PES), or
* the next PES of the same PID starts, or the segment ends (the fallbacks).

Payloads go straight to an H.264 ``CodecContext`` (no parser), which returns the picture at once for
streams without frame reordering (x264 ``zerolatency``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

TS_PACKET = 188
SYNC_BYTE = 0x47
PTS_WRAP = 1 << 33


@dataclass
class Pes:
    """One complete video PES: the elementary-stream bytes and the 90 kHz pts (None if absent)."""

    payload: bytes
    pts: int | None


def _parse_pes_header(data: bytes) -> tuple[int, int | None, int] | None:
    """(declared payload length or 0, pts, header size) of a PES starting at ``data``; None if not video."""
    if len(data) < 9 or data[0:3] != b"\x00\x00\x01" or not 0xE0 <= data[3] <= 0xEF:
        return None
    packet_length = (data[4] << 8) | data[5]
    header_size = 9 + data[8]
    pts = None
    if data[7] & 0x80 and len(data) >= 14:
        pts = (
            ((data[9] >> 1) & 0x07) << 30
            | data[10] << 22
            | (data[11] >> 1) << 15
            | data[12] << 7
            | data[13] >> 1
        )
    payload_length = packet_length - (header_size - 6) if packet_length else 0
    return payload_length, pts, header_size


def _needed_adaptation_bytes(flags: int) -> int:
    needed = 1  # the flags byte
    if flags & 0x10:
        needed += 6  # PCR
    if flags & 0x08:
        needed += 6  # OPCR
    if flags & 0x04:
        needed += 1  # splice countdown
    return needed


@dataclass
class TsVideoDemuxer:
    """Feed TS bytes with :meth:`feed`; it yields each video PES as soon as it is known complete."""

    _pending: bytearray = field(default_factory=bytearray)
    _video_pid: int | None = None
    _pes: bytearray | None = None
    _pes_pts: int | None = None
    _pes_header_size: int = 0
    _pes_payload_length: int = 0  # 0: unbounded

    def feed(self, data: bytes) -> Iterator[Pes]:
        self._pending += data
        offset = 0
        end = len(self._pending) - TS_PACKET + 1
        while offset < end:
            if self._pending[offset] != SYNC_BYTE:  # resynchronise on the next sync byte
                offset += 1
                continue
            yield from self._packet(bytes(self._pending[offset : offset + TS_PACKET]))
            offset += TS_PACKET
        del self._pending[:offset]

    def flush(self) -> Iterator[Pes]:
        """End of a segment: whatever PES is open is complete."""
        self._pending.clear()
        yield from self._close_pes()

    def _close_pes(self) -> Iterator[Pes]:
        if self._pes is not None and len(self._pes) > self._pes_header_size:
            yield Pes(bytes(self._pes[self._pes_header_size :]), self._pes_pts)
        self._pes = None

    def _packet(self, packet: bytes) -> Iterator[Pes]:
        pid = ((packet[1] & 0x1F) << 8) | packet[2]
        unit_start = bool(packet[1] & 0x40)
        control = (packet[3] >> 4) & 0x03
        payload_at = 4
        stuffed = False
        if control & 0x02:
            adaptation_length = packet[4]
            payload_at = 5 + adaptation_length
            if adaptation_length == 0:
                stuffed = True
            else:
                stuffed = adaptation_length > _needed_adaptation_bytes(packet[5])
        if not control & 0x01 or payload_at >= TS_PACKET:
            return
        payload = packet[payload_at:]
        if unit_start:
            header = _parse_pes_header(payload)
            if header is None:
                return  # PSI or a non-video PES
            if self._video_pid is None:
                self._video_pid = pid
            if pid != self._video_pid:
                return
            yield from self._close_pes()
            self._pes_payload_length, self._pes_pts, self._pes_header_size = header
            self._pes = bytearray(payload)
        elif pid != self._video_pid or self._pes is None:
            return
        else:
            self._pes += payload
        received = len(self._pes) - self._pes_header_size
        if stuffed or (self._pes_payload_length and received >= self._pes_payload_length):
            yield from self._close_pes()
