"""Let the demuxer release a video frame as soon as its bytes are complete, not when the next one starts.

MPEG-TS muxers (libavformat's, hence ours, ffmpeg's and OBS's) write video PES packets with
``PES_packet_length`` 0, "unbounded": a demuxer then knows a frame is complete only when the next frame's
first packet arrives, one frame interval later (33 ms at 30 fps, the largest part of our glass-to-glass
time). The same muxers pad the *last* TS packet of each PES with adaptation-field stuffing, so the end is
visible in the bytes. :class:`PesLengthFiller` holds the packets of an open unbounded video PES until that
last packet arrives, writes the PES's real length into its header (legal for video whenever it fits in 16
bits) and releases them; libavformat's demuxer then hands the frame out the moment its last byte is read.

Nothing else changes: whole TS packets are only held (never dropped or reordered), and a PES that does not
fit, ends without stuffing, or belongs to a muxer that stuffs mid-PES (detected, and that PID is left alone
from then on) goes through as before, completed by the next PES.
"""

from __future__ import annotations

import logging
from typing import Protocol

import av

from .ts_packets import PACKET_SIZE, PacketSplitter, packet_pid, starts_unit

logger = logging.getLogger(__name__)

_MAX_PES_LENGTH = 0xFFFF
_PES_FIXED_HEADER = 6  # start code prefix (3), stream_id, PES_packet_length (2)


class SupportsRead(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _payload_start(packet: bytes | bytearray) -> int:
    """Offset of the payload in a TS packet (PACKET_SIZE when it carries none)."""
    control = packet[3] & 0x30
    if not control & 0x10:
        return PACKET_SIZE
    return 5 + packet[4] if control & 0x20 else 4


def _is_stuffed(packet: bytes | bytearray) -> bool:
    """True when the adaptation field holds stuffing bytes: the muxer filled up the last packet of a PES."""
    if not packet[3] & 0x20:
        return False
    length = packet[4]
    if length == 0:
        return True  # an empty adaptation field is exactly one byte of stuffing
    if length > PACKET_SIZE - 5:
        return False  # corrupt: the demuxer will judge this packet
    flags = packet[5]
    needed = 1 + 6 * bool(flags & 0x10) + 6 * bool(flags & 0x08) + bool(flags & 0x04)
    for flag in (0x02, 0x01):  # transport private data, then the extension: each has a length byte
        if flags & flag and needed < length:
            needed += 1 + packet[5 + needed]
    return length > needed


def _unbounded_video_pes(packet: bytes | bytearray, payload_at: int) -> bool:
    """The packet starts a video PES whose header declares no length."""
    header = packet[payload_at : payload_at + _PES_FIXED_HEADER]
    return (
        len(header) == _PES_FIXED_HEADER
        and header[:3] == b"\x00\x00\x01"
        and 0xE0 <= header[3] <= 0xEF
        and header[4] == 0
        and header[5] == 0
    )


class PesLengthFiller:
    """Bytes of one MPEG-TS stream in, the same bytes out, each video PES released once it is complete.

    Not thread-safe: one instance per demuxer (one trickle segment), used by the thread that reads.
    """

    def __init__(self) -> None:
        self._splitter = PacketSplitter()
        self._held: list[bytearray] = []  # the open PES's packets, then whatever followed them
        self._held_pid: int | None = None
        self._held_payload = 0
        self._untrusted_pids: set[int] = set()
        self._last_closed_pid: int | None = None  # PID whose PES we closed on stuffing, until its next PES
        self.filled = 0  # PES released early, with their length written in

    def feed(self, data: bytes) -> bytes:
        """Return the bytes that can go to the demuxer now (possibly none; the rest is held)."""
        out = bytearray()
        for packet in self._splitter.feed(data):
            self._packet(packet, out)
        return bytes(out)

    def flush(self) -> bytes:
        """The end of the stream: release everything held, unchanged (the demuxer completes it at EOF)."""
        out = bytearray()
        self._release(out)
        self._splitter.reset()
        return bytes(out)

    def _packet(self, packet: bytes, out: bytearray) -> None:
        pid = packet_pid(packet)
        payload_at = _payload_start(packet)
        carries_payload = payload_at < PACKET_SIZE
        if pid == self._last_closed_pid and carries_payload:
            if not starts_unit(packet):
                # More of a PES we thought complete: this muxer stuffs mid-PES; stop trusting stuffing here.
                self._untrusted_pids.add(pid)
                logger.info("TS PID %d stuffs inside a video PES: its frames now wait for the next one", pid)
            self._last_closed_pid = None
        if self._held_pid is not None:
            if pid == self._held_pid and carries_payload and starts_unit(packet):
                self._release(out)  # the end went unnoticed: the next PES completes it, as before
            else:
                self._held.append(bytearray(packet))
                if pid == self._held_pid and carries_payload:
                    self._held_payload += PACKET_SIZE - payload_at
                    if _is_stuffed(packet):
                        self._fill_length()
                        self._release(out)
                        self._last_closed_pid = pid
                return
        if (
            carries_payload
            and starts_unit(packet)
            and pid not in self._untrusted_pids
            and _unbounded_video_pes(packet, payload_at)
        ):
            self._held = [bytearray(packet)]
            self._held_pid = pid
            self._held_payload = PACKET_SIZE - payload_at
            if _is_stuffed(packet):  # the whole PES fits in this one packet
                self._fill_length()
                self._release(out)
                self._last_closed_pid = pid
            return
        out += packet

    def _fill_length(self) -> None:
        length = self._held_payload - _PES_FIXED_HEADER
        if length > _MAX_PES_LENGTH:
            return  # too long to declare (large keyframes): completed by the next PES, as before
        first = self._held[0]
        length_at = _payload_start(first) + 4
        first[length_at] = length >> 8
        first[length_at + 1] = length & 0xFF
        self.filled += 1

    def _release(self, out: bytearray) -> None:
        for packet in self._held:
            out += packet
        self._held = []
        self._held_pid = None
        self._held_payload = 0


class CompletingReader:
    """A file-like reader for PyAV over ``source`` (e.g. a :class:`~.bytefeed.ByteFeed`), through a
    :class:`PesLengthFiller`. One per demuxer: the end of ``source``'s stream flushes what is held."""

    def __init__(self, source: SupportsRead) -> None:
        self._source = source
        self._filler = PesLengthFiller()
        self._ready = b""
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        while not self._ready:
            if self._ended:
                return b""
            raw = self._source.read(size)
            if raw:
                self._ready = self._filler.feed(raw)
            else:
                self._ready = self._filler.flush()
                self._ended = True
        if 0 <= size < len(self._ready):
            taken, self._ready = self._ready[:size], self._ready[size:]
            return taken
        taken, self._ready = self._ready, b""
        return taken

    def readable(self) -> bool:
        return True


# Demuxer options: the format is known, so skip format probing, and keep stream probing minimal so the
# first frame is not held back by analysis (the decoder learns sizes from the bitstream anyway; without the
# parser, a larger probe would read up to probesize bytes before the first frame).
# fflags noparse+nofillin: hand each PES to the decoder as demuxed. With libavformat's H.264 parser in the
# way, a frame leaves the demuxer only once the *next* frame's first bytes arrived (the parser looks for
# the next access unit), on top of the PES itself ending only when the next one starts: two frame intervals
# at live rates. Without the parser it is one (bench/run.py: glass-to-glass p50 at 30 fps 79 -> 47 ms);
# CompletingReader removes the remaining one (40 -> 7 ms).
_DEMUX_OPTIONS = {
    "probesize": "32",
    "analyzeduration": "0",
    "fpsprobesize": "0",
    "fflags": "+noparse+nofillin",
}


def open_live_demuxer(source: SupportsRead) -> av.container.InputContainer:
    """libavformat's MPEG-TS demuxer over ``source``, set up to hand out each frame as soon as it can."""
    return av.open(CompletingReader(source), mode="r", format="mpegts", options=dict(_DEMUX_OPTIONS))
