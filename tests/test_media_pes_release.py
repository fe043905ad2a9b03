"""PesLengthFiller: each unbounded video PES is released with its length written in as soon as its
stuffed last packet arrives; everything else goes through byte for byte (pure logic, hand-built packets,
plus our encoder's real output)."""

from __future__ import annotations

from comfy_trickle.media.pes_release import PesLengthFiller
from comfy_trickle.media.synthetic import SyntheticConfig, SyntheticSource
from comfy_trickle.media.ts_packets import PACKET_SIZE, PacketSplitter, packet_pid, payload_of, starts_unit
from hypothesis import given, settings
from hypothesis import strategies as st

VIDEO_PID = 0x100
AUDIO_PID = 0x101


def ts_packet(pid: int, payload: bytes, *, unit_start: bool = False, pcr: bool = False) -> bytes:
    """One TS packet; a short payload is padded with adaptation-field stuffing, as muxers end a PES."""
    header = bytes([0x47, (0x40 if unit_start else 0) | pid >> 8, pid & 0xFF])
    fields = b"\x10" + bytes(6) if pcr else b""  # flags (PCR) + the PCR itself
    room = PACKET_SIZE - 4
    if not fields and len(payload) == room:
        return header + b"\x10" + payload
    stuffing = room - 1 - len(fields) - len(payload)
    assert stuffing >= 0, "payload too long for one packet"
    if not fields and stuffing > 0:
        fields = b"\x00"  # flags byte, then stuffing
        stuffing -= 1
    adaptation = bytes([len(fields) + stuffing]) + fields + b"\xff" * stuffing
    return header + b"\x30" + adaptation + payload


def video_pes(body: bytes, *, stream_id: int = 0xE0, declared: int = 0) -> bytes:
    """A PES with a 5-byte pts header; ``declared`` 0 means unbounded, as muxers write video."""
    header = b"\x00\x00\x01" + bytes([stream_id]) + declared.to_bytes(2, "big")
    return header + b"\x80\x80\x05" + bytes(5) + body


def packetize(pid: int, pes: bytes, *, pcr: bool = False) -> list[bytes]:
    """Split a PES into packets: full ones, the last one stuffed (a PCR in the first when asked)."""
    packets = []
    first_room = PACKET_SIZE - 4 - (8 if pcr else 0)
    chunks = [pes[:first_room]] + [pes[i : i + 184] for i in range(first_room, len(pes), 184)]
    for index, chunk in enumerate(chunks):
        packets.append(ts_packet(pid, chunk, unit_start=index == 0, pcr=pcr and index == 0))
    return packets


def declared_lengths(data: bytes) -> list[int]:
    """PES_packet_length of every video PES that starts in ``data``."""
    lengths = []
    for packet in PacketSplitter().feed(data):
        payload = payload_of(packet)
        if starts_unit(packet) and payload[:3] == b"\x00\x00\x01" and 0xE0 <= payload[3] <= 0xEF:
            lengths.append(int.from_bytes(payload[4:6], "big"))
    return lengths


def test_a_pes_is_held_until_its_stuffed_last_packet_then_released_with_its_length():
    pes = video_pes(bytes(range(256)) * 3)  # 782 bytes: five packets
    packets = packetize(VIDEO_PID, pes, pcr=True)
    filler = PesLengthFiller()
    released = [filler.feed(packet) for packet in packets]
    assert released[:-1] == [b""] * (len(packets) - 1)
    out = released[-1]
    assert len(out) == len(packets) * PACKET_SIZE
    assert declared_lengths(out) == [len(pes) - 6]
    # only the two length bytes changed: after the TS header (4), the adaptation field with the PCR (8)
    # and the PES start code and stream id (4)
    original = b"".join(packets)
    assert [i for i in range(len(out)) if out[i] != original[i]] == [16, 17]
    assert filler.filled == 1


def test_packets_of_other_pids_keep_their_place_and_bounded_pes_pass_at_once():
    audio = packetize(AUDIO_PID, video_pes(b"a" * 50, stream_id=0xC0, declared=63))
    bounded = packetize(VIDEO_PID, video_pes(b"v" * 300, declared=313))
    filler = PesLengthFiller()
    assert filler.feed(b"".join(audio)) == b"".join(audio)
    assert filler.feed(b"".join(bounded)) == b"".join(bounded)
    video = packetize(VIDEO_PID, video_pes(b"x" * 400))
    stream = [video[0], audio[0], video[1], video[2]]
    out = b"".join(filler.feed(p) for p in stream)
    assert [packet_pid(p) for p in PacketSplitter().feed(out)] == [VIDEO_PID, AUDIO_PID, VIDEO_PID, VIDEO_PID]
    assert declared_lengths(out) == [400 + 8]


def test_a_pes_too_long_to_declare_goes_out_unchanged_for_the_demuxer_to_complete_as_before():
    big = packetize(VIDEO_PID, video_pes(b"k" * 70_000))
    filler = PesLengthFiller()
    out = b"".join(filler.feed(p) for p in big)
    assert out == b"".join(big) and declared_lengths(out) == [0]
    assert filler.filled == 0
    following = packetize(VIDEO_PID, video_pes(b"p" * 400))
    assert filler.feed(following[0]) == b""  # the next one is held as usual
    assert filler.flush() == following[0]  # and the stream's end releases it unchanged


def test_a_muxer_that_stuffs_inside_a_pes_is_no_longer_trusted():
    # Two stuffed packets in one PES: the first stuffing looked like the end.
    part_one, part_two = video_pes(b"1" * 100), b"2" * 100
    odd = [ts_packet(VIDEO_PID, part_one, unit_start=True), ts_packet(VIDEO_PID, part_two)]
    filler = PesLengthFiller()
    out = b"".join(filler.feed(p) for p in odd)
    assert len(out) == 2 * PACKET_SIZE  # the first was released early (the one frame this costs)
    later = packetize(VIDEO_PID, video_pes(b"3" * 500))
    assert b"".join(filler.feed(p) for p in later) == b"".join(later)  # passed through, not held


def test_our_encoders_output_gets_every_frames_length_and_nothing_else_changes():
    source = SyntheticSource(SyntheticConfig(width=128, height=96, audio="opus"))
    chunks = [chunk.data for chunk in source.chunks(12)]
    filler = PesLengthFiller()
    released = []
    for chunk in chunks:
        released.append(filler.feed(chunk))
        # everything fed so far is out: our muxer stuffs the last packet of every frame
        assert sum(map(len, released)) == sum(map(len, chunks[: len(released)]))
    original, out = b"".join(chunks), b"".join(released) + filler.flush()
    assert len(out) == len(original)
    lengths = declared_lengths(out)
    assert len(lengths) == 12 and all(lengths)
    assert declared_lengths(original) == [0] * 12
    differing = [i for i in range(len(out)) if out[i] != original[i]]
    assert len(differing) <= 2 * 12


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.sampled_from(["video", "audio", "garbage", "odd"]), max_size=30), st.data())
def test_any_byte_sequence_goes_through_whole_and_in_order(kinds, data):
    """Whatever arrives (cut anywhere, garbage and odd adaptation fields included), every whole TS packet
    comes out once, in order, changed at most in a PES length field, and nothing raises."""
    packets: list[bytes] = []
    for kind in kinds:
        if kind == "video":
            packets += packetize(VIDEO_PID, video_pes(data.draw(st.binary(max_size=600))), pcr=True)
        elif kind == "audio":
            packets += packetize(AUDIO_PID, video_pes(b"a" * 40, stream_id=0xC0, declared=53))
        elif kind == "odd":  # an adaptation field claiming more than the packet holds
            packets.append(bytes([0x47, 0x41, 0x00, 0x30, 0xFF]) + bytes(183))
        else:
            packets.append(b"\x00" * data.draw(st.integers(1, 300)))  # not a packet: skipped
    stream = b"".join(packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    filler = PesLengthFiller()
    out = b"".join(filler.feed(stream[a:b]) for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True))
    out += filler.flush()
    expected = [p for p in packets if p[:1] == b"\x47"]
    got = PacketSplitter().feed(out)
    assert len(got) == len(expected)
    for before, after in zip(expected, got, strict=True):
        assert before[:4] == after[:4] and sum(a != b for a, b in zip(before, after, strict=True)) <= 2
