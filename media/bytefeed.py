"""A bounded, thread-safe byte buffer that a PyAV demuxer reads like a pipe.

The network side pushes chunks with :meth:`ByteFeed.feed` (never blocks); the decode thread pulls with
:meth:`ByteFeed.read`, which blocks until bytes arrive, the input ends or the feed is closed.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Queued between two chunks to end one stream for the reader (a trickle segment boundary).
_BOUNDARY = memoryview(b"")


class ByteFeed:
    """File-like reader over chunks pushed from another thread.

    When more than ``max_buffered_bytes`` wait unread, the oldest chunks are dropped: for live video a
    late byte is worth less than a fresh one, and the demuxer resynchronises on the next TS packet.
    """

    def __init__(self, max_buffered_bytes: int = 8 * 1024 * 1024) -> None:
        if max_buffered_bytes <= 0:
            raise ValueError("max_buffered_bytes must be positive")
        self._max_buffered = max_buffered_bytes
        self._chunks: deque[memoryview] = deque()
        self._buffered = 0
        self._finished = False
        self._closed = False
        self._cond = threading.Condition()
        self.bytes_in = 0
        self.bytes_dropped = 0
        self.bytes_read = 0
        #: Called (cheaply, under the feed's lock) before each read; True makes that read report end of
        #: file, which ends the current demuxer without ending the input.
        self.interrupt_check: Callable[[], bool] | None = None
        self._at_boundary = False

    @property
    def buffered_bytes(self) -> int:
        return self._buffered

    @property
    def exhausted(self) -> bool:
        """True once no byte can arrive any more (input ended and drained, or closed)."""
        with self._cond:
            return self._closed or (self._finished and not self._chunks)

    def feed(self, chunk: bytes | bytearray | memoryview, *, boundary_before: bool = False) -> None:
        """Append a chunk; drops the oldest buffered chunks if the bound is exceeded. Never blocks long.

        ``boundary_before`` puts an end-of-file mark before the chunk: the reader sees the end of one
        stream there and the next read starts the following one.
        """
        if not chunk:
            return
        view = memoryview(bytes(chunk))
        with self._cond:
            if self._closed or self._finished:
                return
            if boundary_before and self.bytes_in and not (self._chunks and self._chunks[-1] is _BOUNDARY):
                self._chunks.append(_BOUNDARY)
            self._chunks.append(view)
            self._buffered += len(view)
            self.bytes_in += len(view)
            dropped = 0
            while self._buffered > self._max_buffered and len(self._chunks) > 1:
                old = self._chunks.popleft()
                self._buffered -= len(old)
                dropped += len(old)
            self._cond.notify()
        if dropped:
            self.bytes_dropped += dropped
            logger.warning(
                "decoder input over %d bytes: dropped %d oldest bytes", self._max_buffered, dropped
            )

    def next_stream(self) -> None:
        """Let reads continue past a boundary or interrupt (the reader has started its next stream)."""
        with self._cond:
            self._at_boundary = False

    def finish(self) -> None:
        """Mark the end of input: readers get the remaining bytes, then end-of-file."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def close(self) -> None:
        """Discard everything and make every pending and future read return end-of-file at once."""
        with self._cond:
            self._closed = True
            self._chunks.clear()
            self._buffered = 0
            self._cond.notify_all()

    def read(self, size: int = -1) -> bytes:
        """Return up to ``size`` bytes, blocking until some arrive; ``b""`` means end of input."""
        with self._cond:
            if self._at_boundary:
                return b""  # sticky: FFmpeg may read again after an end of file
            if self.interrupt_check is not None and self.interrupt_check():
                self._at_boundary = True
                return b""
            while not self._chunks and not self._finished and not self._closed:
                self._cond.wait()
            if self._closed or not self._chunks:
                return b""
            head = self._chunks[0]
            if head is _BOUNDARY:
                self._chunks.popleft()
                self._at_boundary = True
                return b""
            if size < 0 or size >= len(head):
                self._chunks.popleft()
                taken = head
            else:
                taken = head[:size]
                self._chunks[0] = head[size:]
            self._buffered -= len(taken)
            self.bytes_read += len(taken)
            return taken.tobytes()

    def readable(self) -> bool:
        return True
