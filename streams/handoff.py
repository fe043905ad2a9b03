"""Bounded, thread-safe hand-off of decoded frames from the decoder thread to the session's pump.

Drop policy (why it is shaped like this): live means the newest frame, yet trickle delivers video in
segments, and a relay or a test publisher may hand over a whole segment at once, so frames come in
bursts. The two cases it tells apart:
- **A burst** the executor keeps up with on average is served oldest first and loses nothing (bounded by
  ``max_backlog_s`` of media time and ``capacity`` frames, which cap memory).
- **Sustained overload** (a workflow slower than the frame rate, or more streams than the machine runs)
  is served newest first: each take serves the newest frame and drops the older ones, and a prompt that
  starts with an older frame swaps it for the newest (``fresher``, asked on ComfyUI's worker thread when
  the prompt's ``TrickleInput`` runs). Latency then stays about one frame's processing time instead of
  growing to the backlog bound.

How: each frame has a *due* time, its media time on the clock of the input's live edge: ``media_time +
offset``, where ``offset`` is the latest any frame of the last ``OFFSET_WINDOW_S`` arrived relative to
its media time (``DueClock``). A burst's first frame sets the offset, so each later frame of the burst is
due only when a real-time playback of the segment would reach it; a paced input's frames are due as
they arrive. A frame served more than ``max_lateness_s`` (``params.max_lateness_s``, default 0.1 s: above a
keeping-up stream's hiccups, well under a second-old queue) after it was due, while newer frames wait, means a
standing queue, not a burst: the stream goes newest first. It goes back to oldest first when its pump,
with no prompt in flight, finds no frame waiting (``consumer_idle``: it caught up; under overload a newer
frame always waits by the time a prompt ends, and a frame queued ahead keeps the pump from asking). The
producer never blocks, so a slow workflow never stalls the network side; dropped frames are never
converted to RGB (``media.resize.PendingRGB``).
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..media.types import Picture, as_rgb
from .limits import DEFAULT_LATENESS_S
from .stages import FrameStamps

# ``InputFrame.extra`` key of the IMAGE tensor made from ``image`` (set by the frame preparer): lets the
# egress recognise a tensor that passed through the workflow untouched and reuse the uint8 frame.
IMAGE_TENSOR_KEY = "image_tensor"

# the window over which the input's live edge (latest arrival relative to media time) is taken
OFFSET_WINDOW_S = 2.0


@dataclass(slots=True)
class InputFrame:
    """One decoded input frame on its way into ComfyUI.

    ``picture`` is what the decoder produced: an ``[H, W, 3]`` uint8 array, or one converted on first use
    (``image`` converts it; ``picture.shape`` does not); ``media_time`` is its pts in seconds (``pts *
    time_base``); ``arrival`` is ``time.monotonic()`` when it was decoded.
    ``stamps``: the readings of its way through the engine that its stage times come from (see
    ``stages``). ``followers``: the newer frames that share this frame's prompt as one IMAGE batch
    (``params.max_frames_per_prompt``; empty: a prompt of its own), oldest first.
    """

    index: int
    picture: Picture
    pts: int | None
    time_base: Any
    media_time: float
    arrival: float
    extra: dict[str, Any] = field(default_factory=dict)
    stamps: FrameStamps = field(default_factory=FrameStamps)
    followers: tuple[InputFrame, ...] = ()

    @property
    def image(self) -> Any:
        """The uint8 RGB ``[H, W, 3]`` pixels (a deferred picture is converted here, once)."""
        return as_rgb(self.picture)

    @property
    def shape(self) -> tuple[int, ...] | None:
        """The pixels' shape, known without converting them."""
        return getattr(self.picture, "shape", None)


def frames_of(frame: InputFrame) -> tuple[InputFrame, ...]:
    """Every frame a prompt carries: ``frame`` and its followers, oldest first."""
    return (frame, *frame.followers) if frame.followers else (frame,)


class DueClock:
    """When each frame is due on the input's live-edge clock (see the module docstring)."""

    def __init__(self, window_s: float = OFFSET_WINDOW_S) -> None:
        self._window_s = window_s
        # (arrival, arrival - media time), offsets decreasing: the front is the window's latest arrival
        self._offsets: collections.deque[tuple[float, float]] = collections.deque()
        self._last_media_time: float | None = None

    def arrived(self, arrival: float, media_time: float) -> bool:
        """Note a frame's arrival; True when its media time went back (the timeline restarted)."""
        restarted = self._last_media_time is not None and media_time < self._last_media_time
        if restarted:
            self._offsets.clear()  # earlier offsets say nothing about the new timeline
        self._last_media_time = media_time
        offset = arrival - media_time
        offsets = self._offsets
        while offsets and offsets[-1][1] <= offset:
            offsets.pop()
        offsets.append((arrival, offset))
        while offsets[0][0] < arrival - self._window_s:
            offsets.popleft()
        return restarted

    def lateness(self, frame: InputFrame, now: float) -> float:
        """Seconds since ``frame`` was due (negative: not due yet)."""
        offset = self._offsets[0][1] if self._offsets else frame.arrival - frame.media_time
        return now - (frame.media_time + offset)


class FrameHandoff:
    """Frames between one producer thread and one asyncio consumer; see the module docstring.

    ``max_lateness_s``: read at each decision (a live update may change it); ``clock``: the clock of the
    frames' ``arrival`` (``time.monotonic``)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        max_backlog_s: float = 1.0,
        capacity: int = 120,
        max_lateness_s: Callable[[], float] = lambda: DEFAULT_LATENESS_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loop = loop
        self._max_lateness_s = max_lateness_s
        self._max_backlog_s = max_backlog_s
        self._capacity = capacity
        self._clock = clock
        self._frames: collections.deque[InputFrame] = collections.deque()
        self._lock = threading.Lock()
        self._ready = asyncio.Event()  # touched only on the loop
        # A frame put while the consumer is busy wakes nothing: each wake-up from another thread writes to
        # the loop's self-pipe and hands the GIL to the loop, and under overload the consumer rarely waits.
        # (Under the lock: waits under way in ``wait_for_frame``, a cancelled one until it ends, and
        # whether a wake-up is on its way since the last wait began.)
        self._waits = 0
        self._wake_sent = False
        self._ended = False
        self._closed = False
        self._due = DueClock()
        self._newest_first = False
        self._last_started: float | None = None  # media time of the frame this stream's last prompt started
        self._on_ready: Callable[[bool], None] | None = None
        self._said_ready = False
        self.dropped = 0

    def watch_ready(self, on_ready: Callable[[bool], None]) -> None:
        """Call ``on_ready(True)`` when a frame comes to wait here and ``on_ready(False)`` when none waits
        any more (under this hand-off's lock, from any thread: ``on_ready`` must be quick and take no lock
        that waits on this one)."""
        with self._lock:
            self._on_ready = on_ready
            self._said_ready = bool(self._frames)
            on_ready(self._said_ready)

    def _tell_ready(self) -> None:
        """(Under the lock, after a change.)"""
        ready = bool(self._frames) and not self._closed
        if ready != self._said_ready and self._on_ready is not None:
            self._said_ready = ready
            self._on_ready(ready)

    @property
    def newest_first(self) -> bool:
        """Whether the stream is overloaded, so its newest frame is served (see the module docstring)."""
        return self._newest_first

    def put(self, frame: InputFrame) -> bool:
        """Add a frame (any thread, never blocks). Returns False once the hand-off is closed."""
        with self._lock:
            if self._closed or self._ended:
                return False
            if self._due.arrived(frame.arrival, frame.media_time):
                self._last_started = None  # the timeline restarted: its frames come after those run
            self._frames.append(frame)
            while len(self._frames) > self._capacity:
                self._frames.popleft()
                self.dropped += 1
            self._tell_ready()
            wake = self._waits > 0 and not self._wake_sent
            self._wake_sent = self._wake_sent or wake
        if wake:
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
            self._tell_ready()
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
            self._tell_ready()
            return frames

    def set_max_backlog(self, seconds: float) -> None:
        """A live update changed ``params.max_backlog_s``; applies from the next ``get``."""
        with self._lock:
            self._max_backlog_s = seconds

    async def get(self, keep: int = 1) -> InputFrame | None:
        """The next frame to serve (``take_nowait``), waiting for one; None at end of input / after close.
        For a consumer with nothing in flight: having to wait means it keeps up (``consumer_idle``)."""
        self.consumer_idle()  # (it says nothing while a frame waits)
        while await self.wait_for_frame():
            frame = self.take_nowait(keep)
            if frame is not None:
                return frame
        return None

    def take_nowait(self, keep: int = 1) -> InputFrame | None:
        """The next frame to serve without waiting, or None if none: the oldest within the backlog bound,
        or, once the stream is overloaded, the oldest of the newest ``keep`` (the frames a batch may take;
        older ones are dropped)."""
        with self._lock:
            if self._closed:
                return None
            self._drop_over_backlog()
            frames = self._frames
            if not frames:
                return None
            if not self._newest_first and len(frames) > 1:
                self._newest_first = self._stale(frames[0])
            if self._newest_first:
                while len(frames) > keep:
                    frames.popleft()
                    self.dropped += 1
            frame = frames.popleft()
            self._tell_ready()
            return frame

    def consumer_idle(self) -> None:
        """The consumer, with no frame in flight, found nothing to take: the stream keeps up, so it is
        served oldest first again. (Under overload a newer frame always waits by the time a prompt ends.)"""
        with self._lock:
            if not self._frames:
                self._newest_first = False

    def fresher(self, frame: InputFrame) -> InputFrame | None:
        """Asked when ``frame``'s prompt starts (ComfyUI's worker thread): the frame it runs. While the
        stream is overloaded, the newest waiting frame (``frame`` and the older waiting frames count as
        dropped), else ``frame``. None: the prompt must not run it, because a prompt of this stream that
        started earlier ran a newer frame (a frame queued ahead of a swap) and none newer waits."""
        with self._lock:
            chosen = frame
            behind = self._last_started is not None and frame.media_time <= self._last_started
            if self._frames and not self._closed:
                if not self._newest_first and not behind:
                    self._newest_first = self._stale(frame)
                if self._newest_first or behind:
                    chosen = self._frames.pop()
                    self.dropped += len(self._frames) + 1
                    self._frames.clear()
                    self._tell_ready()
            if self._last_started is not None and chosen.media_time <= self._last_started:
                return None
            self._last_started = chosen.media_time
            return chosen

    def _stale(self, frame: InputFrame) -> bool:
        return self._due.lateness(frame, self._clock()) > self._max_lateness_s()

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
        size = like.shape
        taken: list[InputFrame] = []
        with self._lock:
            if self._closed:
                return ()
            self._drop_over_backlog()
            frames = self._frames
            while len(taken) < count and frames and frames[0].shape == size:
                taken.append(frames.popleft())
            self._tell_ready()
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
                self._waits += 1
                self._wake_sent = False
            try:
                await self._ready.wait()
            finally:
                with self._lock:
                    self._waits -= 1

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
