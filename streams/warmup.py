"""Keeping the output alive while a generation warms up (its first run: model load, compile).

While the current generation has not produced its first output frame and its in-flight frame has waited
longer than ``COVER_AFTER_S``, the pump *covers*: that frame and every frame that arrives meanwhile go to
the output at once as the input passed through with a small "updating" mark (a striped bar along the
bottom edge), so the output never goes silent for long and live frames never queue up behind the slow
run (comfystream#537): when it ends, the next frame processed is the newest one.

Each input frame reaches the output exactly once: ``claim`` decides between its real output (ComfyUI's
worker thread) and its placeholder (the event loop); the loser is discarded. Output pts stay monotonic,
because a covered frame's late real output is the one discarded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..media.marks import draw_updating_mark
from .handoff import InputFrame

# wait this long for a warming generation's frame before covering (the output gap stays well under 1 s)
COVER_AFTER_S = 0.4
# how often the pump looks while a generation warms up
COVER_TICK_S = 0.05
CLAIMED_KEY = "output_claimed"


class WarmupCover:
    """Placeholder output for a warming generation (see the module docstring)."""

    def __init__(self, submit: Callable[[InputFrame, Any], bool], on_dropped: Callable[[], None]) -> None:
        self._submit = submit
        self._on_dropped = on_dropped
        self._lock = threading.Lock()
        self.frames_covered = 0

    def claim(self, frame: InputFrame) -> bool:
        """First caller wins the right to put ``frame`` into the output (any thread)."""
        with self._lock:
            if frame.extra.get(CLAIMED_KEY):
                return False
            frame.extra[CLAIMED_KEY] = True
            return True

    def cover(self, frame: InputFrame) -> None:
        """Send ``frame``'s input, marked, to the output unless its real output got there first."""
        if not self.claim(frame):
            return
        placeholder = draw_updating_mark(frame.image, frame.index)
        self.frames_covered += 1
        # a numpy uint8 image: the egress encodes it as is (``media.frames.comfy_image_to_frames``)
        if not self._submit(frame, placeholder[None]):
            self._on_dropped()  # the egress is full: counted like any dropped frame
