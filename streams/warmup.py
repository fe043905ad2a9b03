"""Keeping the output alive while a generation warms up (its first run: model load, compile).

While the current generation has not produced its first output frame and its in-flight frame has waited
longer than ``COVER_AFTER_S``, the pump *covers*: that frame and every frame that arrives meanwhile go to
the output at once as the input passed through with a small "updating" mark (a striped bar along the
bottom edge), so the output never goes silent for long and live frames never queue up behind the slow
run (comfystream#537): when it ends, the next frame processed is the newest one.

Covering is for a slow first frame, not for a workflow that never produces one: a generation that has
not put out a frame ``params.first_frame_timeout_s`` after its first frame was queued (``WarmupClock``)
ends the stream in ``error`` saying so, and so do prompts that keep finishing without ever running
``TrickleOutput`` (``NO_OUTPUT_LIMIT`` in a row: a host that skipped or cached the output node). While it
warms up, the status says how long it has waited (``warm_up``) and counts its placeholders
(``frames_covered``); the Livepeer status events count only processed frames as inference output.

Each input frame reaches the output exactly once: ``claim`` decides between its real output (ComfyUI's
worker thread) and its placeholder (the event loop); the loser is discarded. Output pts stay monotonic,
because a covered frame's late real output is the one discarded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..media.marks import draw_updating_mark
from .handoff import InputFrame

# wait this long for a warming generation's frame before covering (the output gap stays well under 1 s)
COVER_AFTER_S = 0.4
# how often the pump looks while a generation warms up
COVER_TICK_S = 0.05
CLAIMED_KEY = "output_claimed"
# prompts in a row that finished without running TrickleOutput before the stream gives up (a user's
# Interrupt or a cleared queue is not counted: those end prompts on purpose)
NO_OUTPUT_LIMIT = 3


class WarmupClock:
    """How long the current generation has waited for its first output frame (event loop only).

    Started by the first look while the generation warms up, stopped by the first look after it put a
    frame out, and started afresh for each new generation.
    """

    def __init__(self) -> None:
        self._since: float | None = None

    def restart(self) -> None:
        """A new generation took over: its wait starts with its own first frame."""
        self._since = None

    def waited(self, warming: bool) -> float:
        """Seconds the warming generation has waited so far (0 once it is warm)."""
        if not warming:
            self._since = None
            return 0.0
        now = time.monotonic()
        if self._since is None:
            self._since = now
        return now - self._since

    def status(self, timeout_s: float) -> dict[str, float] | None:
        """The status's ``warm_up`` object while a generation waits for its first frame, else None."""
        if self._since is None:
            return None
        return {"waited_s": round(time.monotonic() - self._since, 1), "timeout_s": timeout_s}


def first_frame_timed_out(timeout_s: float, frames_covered: int) -> str:
    """The stream's error when its workflow put out no frame within ``params.first_frame_timeout_s``."""
    return (
        f"the workflow put out no frame within {timeout_s:g} s (params.first_frame_timeout_s): its first "
        f"prompt is still waiting in ComfyUI's queue or running; {frames_covered} input frame(s) went out "
        "marked 'updating' meanwhile"
    )


def no_output_message(prompts: int) -> str:
    """The stream's error when its prompts keep finishing without running ``TrickleOutput``."""
    return (
        f"{prompts} prompts in a row finished without running TrickleOutput: the host skipped the output "
        "node (a cache that reused its result?), so no frame of this workflow can reach the output"
    )


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
