"""In-memory state of the dev relay: segments, channels with a 5-slot ring, and the channel registry.

No HTTP here; ``relay.py`` maps requests onto these objects. Everything runs on one asyncio loop, so
``next_write``/``write_time``/``closed`` are consistent as long as no code awaits between reading and
updating them (section A14 of the protocol notes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator

from .protocol import DEFAULT_MIME_TYPE, RING_SIZE

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class Segment:
    """An append-only byte buffer that any number of readers follow, each from its own position.

    Readers wait on one ``asyncio.Condition`` with a predicate over their position, so a change made
    between reading their position and waiting is never missed. Writers on the loop ``await append()`` /
    ``await close()``; synchronous code (channel close, eviction, server-side writes) uses
    ``close_nowait()``, which changes the state at once and wakes waiting readers from one short task.
    """

    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.closed = False
        # Appended pieces are kept as immutable bytes, so readers send them without copying (Go keeps
        # a page list for the same reason); ``_size`` is their total length.
        self._chunks: list[bytes] = []
        self._size = 0
        self._changed = asyncio.Condition()
        # Tasks inside wait_for_more()/wait_closed(): a synchronous change wakes nobody when there are none.
        self._waiting = 0
        self._wake_task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return self._size

    async def append(self, data: bytes) -> None:
        """Append bytes and wake readers. Appending to a closed segment is allowed (case 15 of A15)."""
        if data:
            async with self._changed:
                self._add(data)
                self._changed.notify_all()

    async def close(self) -> None:
        """Mark the segment complete; readers finish once they have caught up."""
        if not self.closed:
            async with self._changed:
                self.closed = True
                self._changed.notify_all()

    def close_nowait(self, last: bytes = b"") -> None:
        """Append ``last`` (if any) and close, from code that cannot await.

        The state changes at once (later reads see it); readers already waiting are woken by one task,
        shared by every change made before it runs.
        """
        if last:
            self._add(last)
        elif self.closed:
            return
        self.closed = True
        self._wake_soon()

    def chunks_from(self, index: int) -> list[bytes]:
        """The pieces appended after the first ``index`` ones (a reader's position is a piece count)."""
        return self._chunks[index:]

    def read_all(self) -> bytes:
        """Everything written so far."""
        return b"".join(self._chunks)

    async def wait_for_more(self, position: int) -> None:
        """Wait until there are more than ``position`` pieces or the segment is closed."""
        async with self._changed:
            self._waiting += 1
            try:
                await self._changed.wait_for(lambda: len(self._chunks) > position or self.closed)
            finally:
                self._waiting -= 1

    async def wait_closed(self) -> None:
        """Wait until the segment is closed."""
        async with self._changed:
            self._waiting += 1
            try:
                await self._changed.wait_for(lambda: self.closed)
            finally:
                self._waiting -= 1

    def _add(self, data: bytes) -> None:
        self._chunks.append(bytes(data))
        self._size += len(data)

    def _wake_soon(self) -> None:
        # One pending wake covers every change made before it runs; the segment holds it until done.
        if self._waiting and (self._wake_task is None or self._wake_task.done()):
            self._wake_task = asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()


class Channel:
    """A named stream of numbered segments kept in a ring of ``RING_SIZE`` slots."""

    def __init__(self, name: str, mime_type: str, clock: Clock) -> None:
        self.name = name
        self.mime_type = mime_type or DEFAULT_MIME_TYPE
        self.next_write = 0
        self.write_time = clock()
        self.closed = False
        self._clock = clock
        self._ring: list[Segment | None] = [None] * RING_SIZE

    def resolve_read_seq(self, seq: int) -> int:
        """Resolve -1 (next) and -2 (current) for a GET."""
        if seq == -1:
            return self.next_write
        if seq == -2:
            return max(self.next_write - 1, 0)
        return seq

    def segment_for_read(self, seq: int) -> Segment | None:
        """The segment ``seq`` (already resolved) if it is in the ring, pre-creating it under the grace rule.

        A GET slightly ahead of the writer (``seq == next_write``, or 1 before anything was written)
        gets a fresh empty segment to wait on; this is how subscriber preconnect works. Pre-creation
        replaces the slot without closing the old segment, whose readers keep their reference.
        """
        slot = seq % RING_SIZE
        segment = self._ring[slot]
        if segment is not None and segment.idx == seq:
            return segment
        in_grace = seq == self.next_write or (seq == 1 and self.next_write == 0)
        if in_grace and not self.closed:
            segment = Segment(seq)
            self._ring[slot] = segment
            return segment
        return None

    def segment_for_write(self, seq: int) -> Segment:
        """The segment to publish ``seq`` into: reused if the slot holds it, else a new one (evicting)."""
        slot = seq % RING_SIZE
        segment = self._ring[slot]
        if segment is not None and segment.idx == seq:
            return segment
        if segment is not None:
            segment.close_nowait()  # eviction ends the readers of seq - RING_SIZE
        segment = Segment(seq)
        self._ring[slot] = segment
        return segment

    def segment_in_slot(self, seq: int) -> Segment | None:
        """The segment holding exactly ``seq``, without pre-creating anything."""
        segment = self._ring[seq % RING_SIZE]
        return segment if segment is not None and segment.idx == seq else None

    async def reset_before(self, seq: int) -> None:
        """Publisher restart: close every segment older than ``seq`` (newer preconnects stay)."""
        for segment in list(self._ring):
            if segment is not None and segment.idx < seq:
                await segment.close()

    def mark_written(self, seq: int) -> None:
        """Record that segment ``seq`` got its first byte (or completed empty)."""
        self.next_write = seq + 1
        self.write_time = self._clock()

    def close(self) -> None:
        """Close every segment and mark the channel closed; waiting requests learn EOS."""
        self.closed = True
        for segment in self._ring:
            if segment is not None:
                segment.close_nowait()


class ChannelRegistry:
    """The relay's channels by name, with creation, deletion and the idle sweep."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._channels: dict[str, Channel] = {}
        self.on_change: Callable[[str, bool], None] | None = None  # (name, added) for the changefeed

    def __contains__(self, name: str) -> bool:
        return name in self._channels

    def __iter__(self) -> Iterator[Channel]:
        return iter(list(self._channels.values()))

    def get(self, name: str) -> Channel | None:
        return self._channels.get(name)

    def create(self, name: str, mime_type: str = DEFAULT_MIME_TYPE) -> Channel:
        """Create ``name`` (idempotent: an existing channel is returned unchanged)."""
        channel = self._channels.get(name)
        if channel is not None:
            return channel
        channel = Channel(name, mime_type, self.clock)
        self._channels[name] = channel
        logger.info("trickle relay: created channel %s (%s)", name, channel.mime_type)
        if self.on_change is not None:
            self.on_change(name, True)
        return channel

    def delete(self, name: str) -> bool:
        """Close and remove ``name``; False if there is no such channel."""
        channel = self._channels.pop(name, None)
        if channel is None:
            return False
        channel.close()
        logger.info("trickle relay: deleted channel %s", name)
        if self.on_change is not None:
            self.on_change(name, False)
        return True

    def sweep_idle(self, idle_timeout_s: float) -> list[str]:
        """Delete channels with no write for ``idle_timeout_s``; ``_``-prefixed channels are internal."""
        now = self.clock()
        idle = [
            channel.name
            for channel in self._channels.values()
            if not channel.name.startswith("_") and now - channel.write_time > idle_timeout_s
        ]
        for name in idle:
            logger.info("trickle relay: closing idle channel %s", name)
            self.delete(name)
        return idle

    def close_all(self) -> None:
        """Close every channel (server shutdown), waking every waiting request."""
        for name in list(self._channels):
            self.delete(name)
