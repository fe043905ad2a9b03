"""What a stream's encode thread tells its publisher task, and the one bounded buffer between them.

The encode thread ``put``s typed events in order; the publisher task (event loop) ``take``s them in
batches and acts on each: open a trickle segment, write bytes, close the segment, time a frame's
``publish`` stage, end. The bound is on encoded bytes not yet written to the publisher (the bytes in
this buffer plus the batch being written): past ``max_bytes`` the encode thread waits, the egress's frame
queue fills and frames are dropped, so memory stays bounded whatever the network does. (The publisher's
own per-segment body feed then only smooths the socket's pace.)
"""

from __future__ import annotations

import asyncio
import collections
import threading
from dataclasses import dataclass

# encoded bytes the publisher may be behind the encoder before the encode thread waits
MAX_BYTES_IN_FLIGHT = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SegmentStarted:
    """The encoder began its segment ``index``: open the next trickle segment."""

    index: int


@dataclass(frozen=True, slots=True)
class SegmentBytes:
    """MPEG-TS bytes of the open segment."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SegmentEnded:
    """The open segment is complete: close it."""


@dataclass(frozen=True, slots=True)
class FrameEncoded:
    """A frame's ``encode()`` ended at ``at`` (``time.perf_counter()``); once the publisher reaches this
    event, every byte encoded until then is written (the frame's ``publish`` stage)."""

    at: float


@dataclass(frozen=True, slots=True)
class EncoderStopped:
    """The encode thread ended: flushed and done (``error`` None), or failed with ``error``."""

    error: str | None = None


EgressEvent = SegmentStarted | SegmentBytes | SegmentEnded | FrameEncoded | EncoderStopped


class EgressOutbox:
    """Encode thread -> publisher task, in order; see the module docstring.

    A batch of events put before the loop gets to them costs one loop wake-up (each
    ``call_soon_threadsafe`` writes to the loop's self-pipe and costs a loop iteration).
    """

    def __init__(self, max_bytes: int = MAX_BYTES_IN_FLIGHT) -> None:
        self._max_bytes = max_bytes
        self._events: collections.deque[EgressEvent] = collections.deque()
        self._changed = threading.Condition()
        self._unwritten_bytes = 0
        self._wake_scheduled = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()  # touched only on the loop

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the consumer runs on (before the first ``put``)."""
        self._loop = loop

    # --- encode thread ----------------------------------------------------------------------------------
    def put(self, event: EgressEvent) -> None:
        """Queue an event; waits while ``max_bytes`` are unwritten (back-pressure). Dropped once closed."""
        with self._changed:
            if isinstance(event, SegmentBytes):
                while self._unwritten_bytes > self._max_bytes and not self._closed:
                    self._changed.wait(0.5)
                self._unwritten_bytes += len(event.data)
            if self._closed:
                return
            self._events.append(event)
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # loop closed: nobody takes events any more
            pass

    # --- event loop ---------------------------------------------------------------------------------------
    async def take(self) -> list[EgressEvent]:
        """Every event queued so far, oldest first; waits for one."""
        while True:
            with self._changed:
                self._wake_scheduled = False
                if self._events:
                    batch = list(self._events)
                    self._events.clear()
                    return batch
                self._ready.clear()
            await self._ready.wait()

    def written(self, size: int) -> None:
        """``size`` bytes of a ``SegmentBytes`` reached the publisher (or were given up)."""
        with self._changed:
            self._unwritten_bytes -= size
            self._changed.notify_all()

    def close(self) -> None:
        """Stop: a waiting ``put`` returns at once, later events are dropped."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
