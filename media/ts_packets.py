"""Minimal MPEG-TS packet surgery, no decoding: cut a foreign TS byte stream into trickle segments at
keyframes, and join trickle segments into one continuous TS.

* ``KeyframeCutter`` (the push route): every segment it starts begins with PAT, PMT and the first packet
  of a video random-access point, so each trickle segment decodes on its own, as our own segments do.
  A random-access point is a video PES start whose adaptation field sets ``random_access_indicator``
  (ffmpeg, OBS) or, for muxers that do not set it, whose first packet holds an H.264 IDR/SPS or HEVC
  IRAP/VPS NAL unit. Bytes before the first one are dropped (nothing can decode them).
* ``ContinuityRewriter`` (the watch route): segments are self-contained TS, each with its own continuity
  counters; concatenated they would read as packet loss, so the counters are renumbered per PID.
  Timestamps are left as they are (our encoder's are continuous; a foreign producer's stay its own).

Only what these two need is parsed: PAT and PMT sections that fit in one packet (every muxer we know
writes them so) and the adaptation field's flags.
"""

from __future__ import annotations

from dataclasses import dataclass

PACKET_SIZE = 188
SYNC_BYTE = 0x47
PAT_PID = 0x0000
NULL_PID = 0x1FFF
# PMT stream_type values of the video codecs whose keyframes we can recognise
H264_STREAM_TYPE = 0x1B
HEVC_STREAM_TYPE = 0x24
VIDEO_STREAM_TYPES = frozenset({0x01, 0x02, 0x10, H264_STREAM_TYPE, HEVC_STREAM_TYPE})
H264_KEY_NAL_TYPES = frozenset({5, 7})  # IDR slice, SPS
HEVC_KEY_NAL_TYPES = frozenset({*range(16, 22), 32})  # IRAP slices, VPS


def packet_pid(packet: bytes) -> int:
    return ((packet[1] & 0x1F) << 8) | packet[2]


def starts_unit(packet: bytes) -> bool:
    """payload_unit_start_indicator: a PES packet or PSI section begins in this packet."""
    return bool(packet[1] & 0x40)


def has_payload(packet: bytes) -> bool:
    return bool(packet[3] & 0x10)


def payload_of(packet: bytes) -> bytes:
    """The packet's payload (after the adaptation field, if any); empty when it has none."""
    if not has_payload(packet):
        return b""
    start = 4
    if packet[3] & 0x20:
        start = 5 + packet[4]
    return packet[start:PACKET_SIZE] if start < PACKET_SIZE else b""


def random_access_flag(packet: bytes) -> bool:
    """The adaptation field's random_access_indicator."""
    return bool(packet[3] & 0x20) and packet[4] > 0 and bool(packet[5] & 0x40)


class PacketSplitter:
    """Turns arbitrary byte chunks into whole 188-byte packets, skipping garbage until the sync byte."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.skipped_bytes = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        packets: list[bytes] = []
        position = 0
        buffer = self._buffer
        while len(buffer) - position >= PACKET_SIZE:
            if buffer[position] != SYNC_BYTE:
                found = buffer.find(SYNC_BYTE, position + 1)
                skip_to = found if found >= 0 else len(buffer)
                self.skipped_bytes += skip_to - position
                position = skip_to
                continue
            packets.append(bytes(buffer[position:position + PACKET_SIZE]))
            position += PACKET_SIZE
        del buffer[:position]
        return packets

    def reset(self) -> None:
        """Forget a partial packet (a new segment starts on a packet boundary)."""
        self._buffer.clear()


def _section(packet: bytes) -> bytes | None:
    """The PSI section starting in ``packet`` (pointer field skipped), or None."""
    if not starts_unit(packet):
        return None
    payload = payload_of(packet)
    if not payload:
        return None
    start = 1 + payload[0]
    section = payload[start:]
    if len(section) < 3:
        return None
    length = ((section[1] & 0x0F) << 8) | section[2]
    return section[: 3 + length] if 3 + length <= len(section) else None


def parse_pat(packet: bytes) -> list[int]:
    """The PMT PIDs a PAT packet names (program 0, the network PID, skipped)."""
    section = _section(packet)
    if section is None or section[0] != 0x00:
        return []
    pids = []
    for offset in range(8, len(section) - 4, 4):
        program = (section[offset] << 8) | section[offset + 1]
        pid = ((section[offset + 2] & 0x1F) << 8) | section[offset + 3]
        if program != 0:
            pids.append(pid)
    return pids


def parse_pmt(packet: bytes) -> list[tuple[int, int]]:
    """``(stream_type, pid)`` of each elementary stream a PMT packet lists."""
    section = _section(packet)
    if section is None or section[0] != 0x02 or len(section) < 16:
        return []
    program_info_length = ((section[10] & 0x0F) << 8) | section[11]
    offset = 12 + program_info_length
    streams = []
    while offset + 5 <= len(section) - 4:
        stream_type = section[offset]
        pid = ((section[offset + 1] & 0x1F) << 8) | section[offset + 2]
        info_length = ((section[offset + 3] & 0x0F) << 8) | section[offset + 4]
        streams.append((stream_type, pid))
        offset += 5 + info_length
    return streams


def _holds_key_nal(payload: bytes, stream_type: int) -> bool:
    """True when an H.264/HEVC NAL unit of a random-access kind starts in ``payload``."""
    position = payload.find(b"\x00\x00\x01")
    while 0 <= position < len(payload) - 3:
        header = payload[position + 3]
        if stream_type == H264_STREAM_TYPE and header & 0x1F in H264_KEY_NAL_TYPES:
            return True
        if stream_type == HEVC_STREAM_TYPE and (header >> 1) & 0x3F in HEVC_KEY_NAL_TYPES:
            return True
        position = payload.find(b"\x00\x00\x01", position + 3)
    return False


@dataclass(frozen=True, slots=True)
class TsPiece:
    """Bytes to append to the current segment; ``starts_segment``: close it and open a new one first."""

    data: bytes
    starts_segment: bool


class KeyframeCutter:
    """Splits a TS byte stream into pieces; a new segment starts at each video random-access point."""

    def __init__(self) -> None:
        self._splitter = PacketSplitter()
        self._pat: bytes | None = None
        self._pmt: bytes | None = None
        self._pmt_pids: set[int] = set()
        self._video: dict[int, int] = {}  # pid -> stream_type
        self._held_psi: list[bytes] = []  # PAT/PMT seen since the last other packet
        self.started = False
        self.segments = 0

    @property
    def has_video(self) -> bool:
        return bool(self._video)

    def feed(self, data: bytes) -> list[TsPiece]:
        pieces: list[TsPiece] = []
        run: list[bytes] = []
        for packet in self._splitter.feed(data):
            pid = packet_pid(packet)
            if pid == PAT_PID or pid in self._pmt_pids:
                self._learn_psi(pid, packet)
                self._held_psi.append(packet)  # it may open the next segment
                continue
            if self._is_random_access(pid, packet) and self._pat and self._pmt:
                if run:
                    pieces.append(TsPiece(b"".join(run), False))
                    run = []
                pieces.append(TsPiece(self._segment_head() + packet, True))
                self._held_psi.clear()
                self.started = True
                self.segments += 1
                continue
            if self.started:
                run.extend(self._held_psi)
                run.append(packet)
            self._held_psi.clear()
        if run:
            pieces.append(TsPiece(b"".join(run), False))
        return pieces

    def _segment_head(self) -> bytes:
        """PAT + PMT: the ones right before the keyframe when the muxer wrote them there, else copies."""
        held = self._held_psi
        pids = {packet_pid(p) for p in held}
        if PAT_PID in pids and pids & self._pmt_pids:
            return b"".join(held)
        return (self._pat or b"") + (self._pmt or b"")  # both known: checked before a cut

    def _learn_psi(self, pid: int, packet: bytes) -> None:
        if pid == PAT_PID:
            pmt_pids = parse_pat(packet)
            if pmt_pids:
                self._pat = packet
                self._pmt_pids = set(pmt_pids)
            return
        streams = parse_pmt(packet)
        if streams:
            self._pmt = packet
            self._video = {es_pid: kind for kind, es_pid in streams if kind in VIDEO_STREAM_TYPES}

    def _is_random_access(self, pid: int, packet: bytes) -> bool:
        stream_type = self._video.get(pid)
        if stream_type is None or not starts_unit(packet):
            return False
        if random_access_flag(packet):
            return True
        payload = payload_of(packet)
        if len(payload) < 9 or not payload.startswith(b"\x00\x00\x01"):
            return False
        return _holds_key_nal(payload[9 + payload[8]:], stream_type)  # past the PES header


class ContinuityRewriter:
    """Renumbers continuity counters so that segments joined end to end read as one unbroken TS."""

    def __init__(self) -> None:
        self._splitter = PacketSplitter()
        self._next: dict[int, int] = {}

    def start_segment(self) -> None:
        """A new self-contained segment follows: a partial packet left by the last one is dropped."""
        self._splitter.reset()

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for packet in self._splitter.feed(data):
            pid = packet_pid(packet)
            if pid == NULL_PID:
                out += packet
                continue
            if has_payload(packet):
                counter = self._next.get(pid, packet[3] & 0x0F)
                self._next[pid] = (counter + 1) & 0x0F
            elif pid in self._next:  # packets without payload repeat the last counter
                counter = (self._next[pid] - 1) & 0x0F
            else:
                counter = packet[3] & 0x0F
            rewritten = bytearray(packet)
            rewritten[3] = (packet[3] & 0xF0) | counter
            out += rewritten
        return bytes(out)
