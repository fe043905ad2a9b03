"""Hold a stream's first video frames until its first audio packet, so the output starts with its sound.

Muxers interleave a frame's audio *after* its video, and the decoder now releases a frame as soon as its own
bytes are in (``pes_release.py``), so the first frame used to reach the encoder before any audio did. The
encoder declares an audio track in a segment only for audio it has seen, so the whole first output segment
(one second) went out silent. For an input whose demuxer lists an audio track, the first frames wait for
its first packet (then go out in order right after it), at most ``max_hold_s`` of video time: a declared
but silent track only delays the start once. After that nothing is held.
"""

from __future__ import annotations

from collections.abc import Callable

from .types import DecodedFrame

DEFAULT_MAX_HOLD_S = 0.5


class FirstAudioGate:
    """Passes frames to ``emit``; holds the first ones while audio is expected and none came yet.

    Used by the decode thread only (not thread-safe)."""

    def __init__(self, emit: Callable[[DecodedFrame], None], max_hold_s: float = DEFAULT_MAX_HOLD_S) -> None:
        self._emit = emit
        self._max_hold_s = max_hold_s
        self._held: list[DecodedFrame] = []
        self._open = False  # once open, frames pass straight through for good

    def frame(self, frame: DecodedFrame, audio_expected: bool) -> None:
        if self._open or not audio_expected:
            self._release()
            self._emit(frame)
            return
        self._held.append(frame)
        first = self._held[0]
        if float((frame.pts - first.pts) * frame.time_base) >= self._max_hold_s:
            self._release()

    def audio_arrived(self) -> None:
        """Call after handing out an audio packet: the held frames follow it."""
        self._release()

    def flush(self) -> None:
        """The input ended: whatever is held goes out."""
        self._release()

    def _release(self) -> None:
        self._open = True
        held, self._held = self._held, []
        for frame in held:
            self._emit(frame)
