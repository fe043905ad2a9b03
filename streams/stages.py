"""The stages of a frame's way through the engine, and the per-frame stamps they are measured from.

Each ``Stage`` is a key of a status object's ``counters.stage_ms`` (in this order), each
``{mean, p50, p95}`` in milliseconds per frame over its last frames (None until a frame passed it), timed
with ``time.perf_counter``. Not in any stage: the output's wait in the egress queue and the image ->
uint8 conversion before ``encode``.

The stamps a frame collects on its way (``FrameStamps``, filled in by three threads) are what the
session derives ``HANDOFF_WAIT``, ``EXECUTOR_QUEUE`` and ``WORKFLOW`` from; the other stages are timed
where they happen (decoder, encode thread, publisher task). Both are typed, so a misspelt stage or
stamp is an ``AttributeError`` where it is written, never a figure silently missing from the status.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Stage(enum.Enum):
    """A stage of a frame's way; the value is its key in ``counters.stage_ms``."""

    # the decoder's codec call that returned the frame (shared evenly when one call returns several)
    DECODE = "decode"
    # put into the hand-off -> its prompt about to enter ComfyUI's queue (includes the frame preparer's
    # RGB and IMAGE conversions; an overloaded stream's frames are converted in ``TrickleInput`` instead,
    # inside ``WORKFLOW``): ``FrameStamps.handoff`` -> ``FrameStamps.queued``
    HANDOFF_WAIT = "handoff_wait"
    # prompt queued -> ``TrickleInput`` takes the frame (ComfyUI's own overhead before our nodes, and any
    # prompt ahead in its queue): ``FrameStamps.queued`` -> ``FrameStamps.input_started``
    EXECUTOR_QUEUE = "executor_queue"
    # ``TrickleInput`` took the frame -> ``TrickleOutput`` handed over the images (the workflow's nodes
    # and ComfyUI's work between them): ``FrameStamps.input_started`` -> the output's arrival
    WORKFLOW = "workflow"
    # the encoder's ``encode()`` of one output image
    ENCODE = "encode"
    # end of that ``encode()`` -> the publisher task has written every byte encoded until then (each
    # trickle segment write awaited), so it includes waiting behind earlier bytes
    PUBLISH = "publish"


@dataclass(slots=True)
class FrameStamps:
    """``time.perf_counter()`` readings of one input frame's way (None until it got there)."""

    handoff: float | None = None  # put into the hand-off (decode thread)
    queued: float | None = None  # its prompt about to enter ComfyUI's queue (event loop)
    input_started: float | None = None  # ``TrickleInput`` took it (ComfyUI's worker thread)
