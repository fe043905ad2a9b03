"""Trickle publisher: writes a channel's segments in order, each as one streaming POST.

Protocol behaviour (trickle-protocol.md A5, A6, C2):

* seqs run from 0, or (``rejoin=True``) from the channel's ``/next`` with ``Lp-Trickle-Reset`` on the
  first POST, so a restarted publisher does not move ``nextWrite`` backwards under live subscribers;
* each segment's body is fed while it is written, through a bounded buffer: ``write()`` waits while
  ``max_pending_bytes`` are queued and the socket is full, so a slow server never makes memory grow;
* a segment is retried only if none of its bytes were handed to the connection (a re-POST of a seq that
  got bytes would *append*, A15 case 15); after a segment fails part-way the next POST carries
  ``Lp-Trickle-Reset`` so a restarted relay accepts the publisher's seq;
* 404 or ``Lp-Trickle-Closed`` is terminal (``TrickleChannelClosed``); ``close()`` DELETEs the channel.

Preconnect: the next segment's POST is prepared while the current one is written and starts the moment
its first byte exists. aiohttp sends a streaming request's headers only with the first body byte (A14),
so an earlier start would only pin a connection; the keep-alive pool already keeps one warm.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Mapping

import aiohttp

from ._http import TLS_ERRORS, TRANSIENT_ERRORS, SessionHolder, backoff_delay, tls_error
from .address_guard import AddressCheck, TrickleHostRefused
from .errors import (
    TrickleChannelClosed,
    TrickleChannelNotFound,
    TrickleClosedError,
    TrickleError,
    TrickleHTTPError,
    TrickleRetriesExhausted,
    TrickleSegmentError,
)
from .protocol import CLOSED_HEADER, RESET_HEADER, segment_url
from .redact import redact_url

logger = logging.getLogger(__name__)


class _BodyFeed:
    """Bounded byte queue between ``PublishedSegment.write`` and the aiohttp request body.

    Writer and body wait on one ``asyncio.Condition``; every change notifies it once.
    """

    def __init__(self, max_pending_bytes: int) -> None:
        self.max_pending_bytes = max_pending_bytes
        self.pending_bytes = 0
        self.bytes_taken = 0  # handed to the connection; once > 0 the segment can't be retried
        self.finished = False
        self.failed = False
        self._chunks: deque[bytes] = deque()
        self._changed = asyncio.Condition()

    async def put(self, data: bytes) -> None:
        size = len(data)
        async with self._changed:
            # A chunk larger than the bound is accepted once the queue is empty, so any size can be written.
            await self._changed.wait_for(
                lambda: (
                    self.failed
                    or not self.pending_bytes
                    or self.pending_bytes + size <= self.max_pending_bytes
                )
            )
            if self.failed:
                return
            self._chunks.append(data)
            self.pending_bytes += size
            self._changed.notify_all()

    async def finish(self) -> None:
        async with self._changed:
            self.finished = True
            self._changed.notify_all()

    async def fail(self) -> None:
        """The request is over: wake writers (their bytes go nowhere)."""
        async with self._changed:
            self.failed = True
            self._changed.notify_all()

    async def wait_ready(self) -> None:
        """Wait for the first byte or the end of the body."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._chunks or self.finished)

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: self._chunks or self.finished)
                if not self._chunks:
                    return
                chunk = self._chunks.popleft()
                self.pending_bytes -= len(chunk)
                self.bytes_taken += len(chunk)
                self._changed.notify_all()
            yield chunk  # outside the lock: the connection may take its time with it


class PublishedSegment:
    """One segment being published: ``await write(data)`` any number of times, then ``await close()``."""

    def __init__(
        self, seq: int, feed: _BodyFeed, task: asyncio.Task[None], publisher: TricklePublisher
    ) -> None:
        self.seq = seq
        self.bytes_written = 0
        self._feed = feed
        self._task = task
        self._publisher = publisher
        self._closed = False

    @property
    def pending_bytes(self) -> int:
        """Bytes written but not yet handed to the connection (bounded by ``max_pending_bytes``)."""
        return self._feed.pending_bytes

    async def write(self, data: bytes) -> None:
        """Append bytes; waits while the server is slower than the writer (back-pressure)."""
        if self._closed:
            raise TrickleError(f"segment {self.seq} is already closed")
        if self._task.done():
            self._raise_outcome()
            raise TrickleSegmentError(f"segment {self.seq} ended before its body was complete", self.seq)
        await self._feed.put(bytes(data))
        if self._feed.failed:
            if not self._task.done():  # the feed fails as the request ends; let it finish
                await asyncio.wait({self._task})
            self._raise_outcome()
        self.bytes_written += len(data)

    async def close(self) -> None:
        """End the segment and wait for the server's answer; raises what went wrong, if anything."""
        if self._closed:
            return
        self._closed = True
        await self._feed.finish()
        try:
            await asyncio.wait({self._task})
        except asyncio.CancelledError:
            self._task.cancel()
            raise
        self._raise_outcome()

    async def abort(self) -> None:
        """Drop the segment part-way: cut its POST and DELETE it so its readers finish at once."""
        if self._closed:
            return
        self._closed = True
        self._task.cancel()
        await asyncio.wait({self._task})
        await self._publisher._delete(segment_url(self._publisher.url, self.seq))

    def _raise_outcome(self) -> None:
        if self._task.cancelled():
            raise TrickleClosedError(f"segment {self.seq} was cancelled (publisher closed)")
        error = self._task.exception()
        if error is not None:
            raise error

    async def __aenter__(self) -> PublishedSegment:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.abort()


class TricklePublisher:
    """Publishes segments to a trickle channel; usable from any asyncio loop.

    Args:
        url: channel URL, e.g. ``https://orch:8935/ai/trickle/<stream>-out``.
        mime_type: Content-Type sent with each POST (servers use it only when auto-creating a channel).
        session: an aiohttp session to use (not closed by us); by default we own one.
        verify_tls: verify the server certificate (default); False accepts self-signed servers.
        rejoin: continue an existing channel at its ``/next`` seq with ``Lp-Trickle-Reset``.
        max_pending_bytes: bound on bytes queued per segment before ``write()`` waits.
        max_retries / retry_backoff_s / max_backoff_s: retries of a segment none of whose bytes went out.
        connect_timeout_s: bound on establishing a TCP/TLS connection.
        address_check / headers: as ``TrickleSubscriber``'s (no redirects are followed).
    """

    def __init__(
        self,
        url: str,
        *,
        mime_type: str = "video/MP2T",
        session: aiohttp.ClientSession | None = None,
        verify_tls: bool = True,
        rejoin: bool = False,
        max_pending_bytes: int = 1024 * 1024,
        max_retries: int = 3,
        retry_backoff_s: float = 0.25,
        max_backoff_s: float = 2.0,
        connect_timeout_s: float = 10.0,
        address_check: AddressCheck | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.mime_type = mime_type
        self.verify_tls = verify_tls
        self.rejoin = rejoin
        self.max_pending_bytes = max_pending_bytes
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.max_backoff_s = max_backoff_s
        self._http = SessionHolder(
            session, connect_timeout_s, address_check=address_check, headers=headers
        )
        self._next_seq = 0
        self._reset_next = False
        self._started = False
        self._closed = False
        self._terminal: TrickleChannelClosed | None = None
        self._preconnected: tuple[int, _BodyFeed, asyncio.Task[None]] | None = None
        self._open: set[PublishedSegment] = set()

    @property
    def next_seq(self) -> int:
        """The seq the next ``open_segment()`` will write."""
        return self._next_seq

    async def start(self) -> None:
        """Prepare to publish (called by the first ``open_segment()`` if needed).

        With ``rejoin=True`` asks the channel's ``/next`` for the seq to continue at; raises
        ``TrickleChannelNotFound`` if the channel does not exist.
        """
        if self._started:
            return
        self._started = True
        if self.rejoin:
            url = segment_url(self.url, "next")
            try:
                self._http.check(url)
                async with self._http.get().get(url, ssl=self.verify_tls, allow_redirects=False) as response:
                    body = (await response.read()).decode("utf-8", "replace").strip()
                    if response.status == 404:
                        raise TrickleChannelNotFound(f"{redact_url(self.url)}: no such channel (404)")
                    if response.status != 200 or not body.isdigit():
                        raise TrickleHTTPError(url, response.status, body)
            except TLS_ERRORS as err:
                raise tls_error(url, err) from err
            self._next_seq = int(body)
            self._reset_next = True
            logger.info("trickle: rejoining %s at seq %d", redact_url(self.url), self._next_seq)

    async def open_segment(self) -> PublishedSegment:
        """Start the next segment. Raises ``TrickleChannelClosed`` once the channel is gone."""
        if self._closed:
            raise TrickleClosedError("publisher is closed")
        if self._terminal is not None:
            raise self._terminal
        await self.start()
        seq = self._next_seq
        self._next_seq += 1
        if self._preconnected is not None and self._preconnected[0] == seq:
            _, feed, task = self._preconnected
        else:
            self._cancel_preconnect()
            feed, task = self._prepare(seq)
        self._preconnected = (seq + 1, *self._prepare(seq + 1))
        segment = PublishedSegment(seq, feed, task, self)
        self._open.add(segment)
        task.add_done_callback(lambda _: self._open.discard(segment))
        return segment

    async def write_segment(self, data: bytes) -> int:
        """Publish ``data`` as one whole segment; returns its seq."""
        segment = await self.open_segment()
        try:
            await segment.write(data)
        except BaseException:
            await segment.abort()
            raise
        await segment.close()
        return segment.seq

    async def close(self, delete_channel: bool = True) -> None:
        """Stop publishing: cut unfinished segments, optionally DELETE the channel, close our session.

        Idempotent; never raises for a channel that is already gone.
        """
        if self._closed:
            return
        self._closed = True
        self._cancel_preconnect()
        # Unfinished segments are cut: the server sees a broken body and closes them (or, in Go, the
        # channel DELETE below ends their readers).
        segments = list(self._open)
        for segment in segments:
            segment._task.cancel()
        if segments:
            await asyncio.wait([segment._task for segment in segments])
        for segment in segments:
            # A task cancelled before its first step never ran _send's finally: wake its writers here.
            await segment._feed.fail()
        if delete_channel and self._terminal is None:
            await self._delete(self.url)
        await self._http.close()

    async def __aenter__(self) -> TricklePublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ----------------------------------------------------------------- internals

    def _prepare(self, seq: int) -> tuple[_BodyFeed, asyncio.Task[None]]:
        feed = _BodyFeed(self.max_pending_bytes)
        task = asyncio.get_running_loop().create_task(self._send(seq, feed))
        return feed, task

    def _cancel_preconnect(self) -> None:
        if self._preconnected is not None:
            self._preconnected[2].cancel()
            self._preconnected = None

    async def _send(self, seq: int, feed: _BodyFeed) -> None:
        """POST segment ``seq``; however that ends, writers still waiting on the feed are woken."""
        try:
            await self._post(seq, feed)
        finally:
            await feed.fail()

    async def _post(self, seq: int, feed: _BodyFeed) -> None:
        """Send segment ``seq`` once its first byte (or its end) exists; retry while nothing went out."""
        await feed.wait_ready()
        url = segment_url(self.url, seq)
        failures = 0
        while True:
            headers = {"Content-Type": self.mime_type}
            if self._reset_next:
                headers[RESET_HEADER] = "1"
            outcome: BaseException
            try:
                session = self._http.get()
                self._http.check(url)
                async with session.post(
                    url, data=feed.body(), headers=headers, ssl=self.verify_tls, allow_redirects=False
                ) as response:
                    body = (await response.content.read(4096)).decode("utf-8", "replace")
                    if response.status == 200 and not response.headers.get(CLOSED_HEADER):
                        self._reset_next = False
                        return
                    if response.status == 404 or response.headers.get(CLOSED_HEADER):
                        self._terminal = TrickleChannelClosed(
                            f"{redact_url(self.url)}: channel closed (seq {seq})"
                        )
                        self._cancel_preconnect()
                        raise self._terminal
                    outcome = TrickleHTTPError(url, response.status, body)
                    if response.status < 500:
                        raise outcome
            except TLS_ERRORS as err:
                raise tls_error(url, err) from err
            except TRANSIENT_ERRORS as err:
                outcome = err
            if feed.bytes_taken:
                # Bytes may have reached the server: a retry would append to them. Give this segment up
                # and make the next POST a reset, so a restarted relay accepts our seq.
                self._reset_next = True
                raise TrickleSegmentError(
                    f"segment {seq} failed after {feed.bytes_taken} bytes: {outcome!r}", seq
                )
            failures += 1
            if failures > self.max_retries:
                self._reset_next = True
                raise TrickleRetriesExhausted(url, failures, outcome)
            delay = backoff_delay(failures, self.retry_backoff_s, self.max_backoff_s)
            logger.warning(
                "trickle: POST %s failed before any byte (%r); retry in %.2fs",
                redact_url(url),
                outcome,
                delay,
            )
            await asyncio.sleep(delay)

    async def _delete(self, url: str) -> None:
        if self._http.closed:
            return
        try:
            self._http.check(url)
            session = self._http.get()
            async with session.delete(url, ssl=self.verify_tls, allow_redirects=False) as response:
                if response.status not in (200, 400, 404):
                    logger.warning("trickle: DELETE %s answered %d", redact_url(url), response.status)
        except (*TRANSIENT_ERRORS, *TLS_ERRORS, TrickleHostRefused) as err:
            logger.warning("trickle: DELETE %s failed: %r", redact_url(url), err)
