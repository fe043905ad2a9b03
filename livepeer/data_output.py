"""A stream's data channel (``data_url``): text items in JSONL batches, as BYOC and pytrickle send them.

Format: each segment is one JSON array of strings plus ``\\n`` (MIME ``application/jsonl``: the channel
``{mid}-data`` that ``go-livepeer:byoc/stream_orchestrator.go`` creates), a batch about every 333 ms while
items come, an empty ``[]\\n`` keep-alive about every 25 s otherwise (pytrickle's data publisher, see
shared/reference/livepeer-and-comfystream-contracts.md §2.5 "Text output").

``put`` is called from ComfyUI's worker thread (``TrickleTextOutput``); it never blocks: items wait in a
bounded buffer (oldest dropped) that the publish task on the event loop drains.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import threading
import time

from ..trickle.publisher import TricklePublisher

logger = logging.getLogger(__name__)

BATCH_INTERVAL_S = 0.333
KEEPALIVE_INTERVAL_S = 25.0
MAX_BUFFERED = 1000
WRITE_TIMEOUT_S = 5.0
MIME_TYPE = "application/jsonl"


class DataOutput:
    def __init__(self, url: str, *, batch_interval_s: float = BATCH_INTERVAL_S,
                 keepalive_interval_s: float = KEEPALIVE_INTERVAL_S) -> None:
        self.url = url
        self.batch_interval_s = batch_interval_s
        self.keepalive_interval_s = keepalive_interval_s
        self.batches_sent = 0
        self.items_dropped = 0
        self._items: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._publisher: TricklePublisher | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="trickle-data-output")

    def put(self, text: str) -> None:
        """Queue one item (any thread)."""
        with self._lock:
            if len(self._items) >= MAX_BUFFERED:
                self._items.popleft()
                self.items_dropped += 1
            self._items.append(str(text))

    def _take(self) -> list[str]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    async def _run(self) -> None:
        last_write = time.monotonic()
        while True:
            await asyncio.sleep(self.batch_interval_s)
            items = self._take()
            if items or time.monotonic() - last_write >= self.keepalive_interval_s:
                await self._write(items)
                last_write = time.monotonic()

    async def _write(self, items: list[str]) -> None:
        body = (json.dumps(items) + "\n").encode()
        try:
            if self._publisher is None:
                self._publisher = TricklePublisher(self.url, mime_type=MIME_TYPE)
            await asyncio.wait_for(self._publisher.write_segment(body), WRITE_TIMEOUT_S)
            self.batches_sent += 1
        except asyncio.CancelledError:
            raise
        except Exception as err:
            logger.warning("data %s: batch of %d item(s) not sent: %r", self.url, len(items), err)
            self.items_dropped += len(items)
            publisher, self._publisher = self._publisher, None
            if publisher is not None:
                with contextlib.suppress(Exception):
                    await publisher.close(delete_channel=False)

    async def close(self) -> None:
        """Send what is buffered, then stop (the channel belongs to the gateway: not deleted)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        items = self._take()
        if items:
            await self._write(items)
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publisher.close(delete_channel=False)


class DataOutputDirectory:
    """stream id -> its ``DataOutput`` (thread-safe: nodes look up from the worker thread)."""

    def __init__(self) -> None:
        self._outputs: dict[str, DataOutput] = {}
        self._lock = threading.Lock()

    def register(self, stream_id: str, output: DataOutput) -> None:
        with self._lock:
            self._outputs[stream_id] = output

    def unregister(self, stream_id: str, output: DataOutput) -> None:
        with self._lock:
            if self._outputs.get(stream_id) is output:
                del self._outputs[stream_id]

    def lookup(self, stream_id: str) -> DataOutput | None:
        with self._lock:
            return self._outputs.get(stream_id)


PROCESS_DATA_OUTPUTS = DataOutputDirectory()
