"""FirstAudioGate: a stream's first frames wait for its first audio packet (bounded), then nothing waits."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from comfy_trickle.media.first_audio import FirstAudioGate
from comfy_trickle.media.types import DecodedFrame

TB = Fraction(1, 90_000)


def frame(index: int, fps: int = 30) -> DecodedFrame:
    pixels = np.zeros((2, 2, 3), np.uint8)
    return DecodedFrame(picture=pixels, pts=index * 90_000 // fps, time_base=TB, index=index)


def test_first_frames_follow_the_first_audio_packet_in_order_then_pass_straight():
    out: list[int] = []
    gate = FirstAudioGate(lambda f: out.append(f.index))
    gate.frame(frame(0), audio_expected=True)
    gate.frame(frame(1), audio_expected=True)
    assert out == []  # held: the encoder would open its first segment without a sound track
    gate.audio_arrived()
    assert out == [0, 1]
    gate.frame(frame(2), audio_expected=True)
    assert out == [0, 1, 2]


def test_a_silent_audio_track_delays_the_start_by_at_most_the_bound():
    out: list[int] = []
    gate = FirstAudioGate(lambda f: out.append(f.index), max_hold_s=0.5)
    for index in range(15):  # 0.467 s of video at 30 fps
        gate.frame(frame(index), audio_expected=True)
    assert out == []
    gate.frame(frame(15), audio_expected=True)  # 0.5 s after the first held frame
    assert out == list(range(16))
    gate.frame(frame(16), audio_expected=True)
    assert out[-1] == 16


def test_video_only_input_is_never_held_and_the_end_releases_what_waits():
    out: list[int] = []
    gate = FirstAudioGate(lambda f: out.append(f.index))
    gate.frame(frame(0), audio_expected=False)
    assert out == [0]
    held: list[int] = []
    other = FirstAudioGate(lambda f: held.append(f.index))
    other.frame(frame(0), audio_expected=True)
    other.flush()
    assert held == [0]
