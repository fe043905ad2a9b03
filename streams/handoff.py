"""Bounded, thread-safe hand-off of decoded frames from the decoder thread to the session's dispatcher.

Drop policy (why it is shaped like this): trickle delivers video in segments, and a relay or a test
publisher may hand us a whole segment at once, so the decoder produces frames in bursts. Dropping on a
small fixed capacity would throw most of every burst away even when ComfyUI keeps up on average. So the
bound is on *media time*: the queue holds at most ``max_backlog_s`` seconds of video (newest pts minus
oldest pts); when the executor falls behind by more than that, the oldest frames are dropped and the
stream catches up, which bounds latency without punishing bursty arrival. ``capacity`` is a hard cap
on memory. The producer never blocks, so a slow workflow can never stall the network side.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from dataclasses import dataclass, field
from typing import Any

from .stages import FrameStamps

# ``InputFrame.extra`` key of the IMAGE tensor made from ``image`` (set by the frame preparer): lets the
# egress recognise a tensor that passed through the workflow untouched and reuse the uint8 frame.
IMAGE_TENSOR_KEY = "image_tensor"


@dataclass(slots=True)
class InputFrame:
    """One decoded input frame on its way into ComfyUI.

    ``image`` is whatever the decoder produced (an ``[H, W, 3]`` uint8 array); ``media_time`` is its pts
    in seconds (``pts * time_base``); ``arrival`` is ``time.monotonic()`` when it was decoded.
    ``stamps``: the readings of its way through the engine that its stage times come from (see
    ``stages``). ``followers``: the newer frames that share this frame's prompt as one IMAGE batch
    (``params.max_frames_per_prompt``; empty: a prompt of its own), oldest first.
    """

    index: int
    image: Any
    pts: int | None
    time_base: Any
    media_time: float
    arrival: float
    extra: dict[str, Any] = field(default_factory=dict)
    stamps: FrameStamps = field(default_factory=FrameStamps)
    followers: tuple[InputFrame, ...] = ()


def frames_of(frame: InputFrame) -> tuple[InputFrame, ...]:
    """Every frame a prompt carries: ``frame`` and its followers, oldest first."""
    return (frame, *frame.followers) if frame.followers else (frame,)


class FrameHandoff:
    """FIFO between one producer thread and one asyncio consumer; see the module docstring."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, max_backlog_s: float = 1.0, capacity: int = 120
    ) -> None:
        self._loop = loop
        self._max_backlog_s = max_backlog_s
        self._capacity = capacity
        self._frames: collections.deque[InputFrame] = collections.deque()
        self._lock = threading.Lock()
        self._ready = asyncio.Event()  # touched only on the loop
        self._ended = False
        self._closed = False
        self.dropped = 0

    def put(self, frame: InputFrame) -> bool:
        """Add a frame (any thread, never blocks). Returns False once the hand-off is closed."""
        with self._lock:
            if self._closed or self._ended:
                return False
            self._frames.append(frame)
            while len(self._frames) > self._capacity:
                self._frames.popleft()
                self.dropped += 1
        self._wake()
        return True

    def end(self) -> None:
        """The input ended: the consumer drains what is queued, then ``get`` returns None."""
        with self._lock:
            self._ended = True
        self._wake()

    def close(self) -> None:
        """Stop now: queued frames are discarded (counted in ``dropped``), ``get`` returns None, later
        ``put`` calls return False."""
        with self._lock:
            self._closed = True
            self.dropped += len(self._frames)
            self._frames.clear()
        self._wake()

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    def take_all(self) -> list[InputFrame]:
        """Every queued frame at once, oldest first, without waiting (the warm-up cover sends them to the
        output as placeholders, so they never queue up behind a slow first run)."""
        with self._lock:
            if self._closed:
                return []
            frames = list(self._frames)
            self._frames.clear()
            return frames

    def set_max_backlog(self, seconds: float) -> None:
        """A live update changed ``params.max_backlog_s``; applies from the next ``get``."""
        with self._lock:
            self._max_backlog_s = seconds

    async def get(self) -> InputFrame | None:
        """The oldest frame still within the backlog bound, or None at end of input / after close."""
        while await self.wait_for_frame():
            frame = self.take_nowait()
            if frame is not None:
                return frame
        return None

    def take_nowait(self) -> InputFrame | None:
        """The oldest frame still within the backlog bound (older ones are dropped), or None if none."""
        with self._lock:
            if self._closed:
                return None
            self._drop_over_backlog()
            return self._frames.popleft() if self._frames else None

    def _drop_over_backlog(self) -> None:
        """Drop the oldest frames while more than ``max_backlog_s`` of video waits (under the lock)."""
        while len(self._frames) > 1 and (
            self._frames[-1].media_time - self._frames[0].media_time > self._max_backlog_s
        ):
            self._frames.popleft()
            self.dropped += 1

    def take_following(self, count: int, like: InputFrame) -> tuple[InputFrame, ...]:
        """Up to ``count`` queued frames of ``like``'s size, oldest first, without waiting (the frames that
        join ``like``'s prompt as a batch). Stops at a frame of another size (a resize is under way);
        frames over the backlog bound are dropped first, as in ``take_nowait``."""
        size = getattr(like.image, "shape", None)
        taken: list[InputFrame] = []
        with self._lock:
            if self._closed:
                return ()
            self._drop_over_backlog()
            frames = self._frames
            while len(taken) < count and frames and getattr(frames[0].image, "shape", None) == size:
                taken.append(frames.popleft())
        return tuple(taken)

    async def wait_for_frame(self) -> bool:
        """Until a frame is queued (True) or none will come any more (False: ended and drained, or
        closed); takes nothing."""
        while True:
            with self._lock:
                if self._closed:
                    return False
                if self._frames:
                    return True
                if self._ended:
                    return False
                self._ready.clear()
            await self._ready.wait()

    def _wake(self) -> None:
        if self._loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._ready.set()
        else:
            try:
                self._loop.call_soon_threadsafe(self._ready.set)
            except RuntimeError:  # the loop closed meanwhile: nobody is waiting any more
                pass
