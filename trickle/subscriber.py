"""Trickle subscriber: reads a channel segment by segment, each one as bytes as they arrive.

Protocol behaviour (trickle-protocol.md A5, A7, C2): start at ``-2`` (current segment, from its first
byte) or any seq; the next segment's GET is issued while the current one is read (preconnect); 470 jumps
to ``Lp-Trickle-Latest``; 404 or ``Lp-Trickle-Closed`` is the end of the stream; transient failures are
retried with exponential back-off and then raise ``TrickleRetriesExhausted``; a GET still waiting for
headers after ``preconnect_refresh_s`` is re-issued, as Go's subscriber does, so a silently dead
connection cannot hang the reader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping

import aiohttp

from ._http import TLS_ERRORS, TRANSIENT_ERRORS, SessionHolder, backoff_delay, tls_error
from .address_guard import AddressCheck
from .errors import (
    TrickleChannelNotFound,
    TrickleHTTPError,
    TrickleRetriesExhausted,
    TrickleSegmentError,
)
from .protocol import (
    CLOSED_HEADER,
    LATEST_HEADER,
    SEQ_CURRENT,
    SEQ_HEADER,
    STATUS_SEQ_UNAVAILABLE,
    parse_int_header,
    segment_url,
)
from .redact import redact_url

logger = logging.getLogger(__name__)


class SubscribedSegment:
    """One segment being received. Read it with ``iter_chunks()`` or ``read_all()``, once."""

    def __init__(self, seq: int, response: aiohttp.ClientResponse) -> None:
        self.seq = seq
        self.content_type: str | None = response.headers.get("Content-Type")
        self.bytes_read = 0
        self.complete = False  # True once the body was read to its end
        self._response: aiohttp.ClientResponse | None = response

    async def read_chunk(self) -> bytes:
        """The next bytes received (as soon as any arrive); ``b""`` at the end of the segment.

        Raises ``TrickleSegmentError`` if the connection breaks part-way: the segment is truncated, but the
        subscriber can go on with the next one.
        """
        response = self._response
        if response is None:
            return b""
        try:
            chunk = await response.content.readany()
        except TRANSIENT_ERRORS as err:
            self.release()
            raise TrickleSegmentError(
                f"segment {self.seq} interrupted after {self.bytes_read} bytes: {err!r}", self.seq
            ) from err
        if not chunk:
            self.complete = True
            self.release()
            return b""
        self.bytes_read += len(chunk)
        return chunk

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Yield the segment's bytes as they arrive, until its end."""
        while chunk := await self.read_chunk():
            yield chunk

    async def read_all(self, max_bytes: int | None = None) -> bytes:
        """Read the whole segment. With ``max_bytes``, raise ``TrickleSegmentError`` past that size."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.iter_chunks():
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                self.release()
                raise TrickleSegmentError(f"segment {self.seq} is larger than {max_bytes} bytes", self.seq)
            parts.append(chunk)
        return b"".join(parts)

    def release(self) -> None:
        """Stop reading and free the connection (safe to call at any time, any number of times)."""
        response, self._response = self._response, None
        if response is not None:
            if self.complete:
                response.release()
            else:
                response.close()  # an unread body cannot go back to the pool

    async def __aenter__(self) -> SubscribedSegment:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


class TrickleSubscriber:
    """Reads a trickle channel; usable from any asyncio loop, one reader at a time.

    Args:
        url: channel URL, e.g. ``https://orch:8935/ai/trickle/<stream>``.
        start_seq: first seq to read: ``-2`` the current segment (default), ``-1`` the next one, or >= 0.
        session: an aiohttp session to use (not closed by us); by default we own one.
        verify_tls: verify the server certificate (default); False accepts self-signed servers.
        max_retries: consecutive transient failures tolerated per segment before giving up.
        retry_backoff_s / max_backoff_s: exponential back-off between retries.
        preconnect_refresh_s: re-issue a GET that has waited this long for its headers.
        connect_timeout_s: bound on establishing a TCP/TLS connection.
        address_check: refuse hosts (and resolved addresses) it returns False for, at connect time
            (``address_guard``); redirects are never followed either way.
        headers: sent with every request of a session we own (e.g. ``Authorization: Bearer ...``).
    """

    def __init__(
        self,
        url: str,
        *,
        start_seq: int = SEQ_CURRENT,
        session: aiohttp.ClientSession | None = None,
        verify_tls: bool = True,
        max_retries: int = 5,
        retry_backoff_s: float = 0.25,
        max_backoff_s: float = 2.0,
        preconnect_refresh_s: float = 20.0,
        connect_timeout_s: float = 10.0,
        address_check: AddressCheck | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.verify_tls = verify_tls
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.max_backoff_s = max_backoff_s
        self.preconnect_refresh_s = preconnect_refresh_s
        self.segments_read = 0
        self._seq = start_seq
        self._http = SessionHolder(
            session, connect_timeout_s, address_check=address_check, headers=headers
        )
        self._pending: tuple[int, asyncio.Task[SubscribedSegment | None]] | None = None
        self._current: SubscribedSegment | None = None
        self._ended = False
        self._closed = False

    @property
    def next_seq(self) -> int:
        """The seq the next ``next_segment()`` asks for (may be -1/-2 before the first segment)."""
        return self._seq

    async def next_segment(self) -> SubscribedSegment | None:
        """The next segment, or None at the end of the stream (or after ``close()``).

        Releases the previous segment. Raises ``TrickleChannelNotFound`` if the channel is unknown before
        anything was read, ``TrickleRetriesExhausted`` after too many transient failures, ``TrickleTLSError``
        for certificate problems and ``TrickleHTTPError`` for unexpected statuses.
        """
        if self._current is not None:
            self._current.release()
            self._current = None
        if self._closed or self._ended:
            return None
        if self._pending is not None and self._pending[0] == self._seq:
            task = self._pending[1]
        else:
            self._cancel_pending()
            task = asyncio.get_running_loop().create_task(self._fetch(self._seq))
        self._pending = (self._seq, task)
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            self._cancel_pending()
            raise
        self._pending = None
        if task.cancelled():  # close() ran meanwhile
            return None
        segment = task.result()  # raises the typed error, if any
        if segment is None:
            self._ended = True
            return None
        if self._closed:
            segment.release()
            return None
        self._current = segment
        self.segments_read += 1
        self._seq = segment.seq + 1
        # Preconnect: the GET for the next segment waits on the server while this one is read.
        self._pending = (self._seq, asyncio.get_running_loop().create_task(self._fetch(self._seq)))
        return segment

    def __aiter__(self) -> TrickleSubscriber:
        return self

    async def __anext__(self) -> SubscribedSegment:
        segment = await self.next_segment()
        if segment is None:
            raise StopAsyncIteration
        return segment

    async def close(self) -> None:
        """Stop: cancel pending GETs, release the current segment, close our session. Idempotent."""
        self._closed = True
        pending = self._pending[1] if self._pending is not None else None
        self._cancel_pending()
        if pending is not None:
            await asyncio.wait({pending})  # its segment, if it got one, is released by _cancel_pending
        if self._current is not None:
            self._current.release()
            self._current = None
        await self._http.close()

    async def __aenter__(self) -> TrickleSubscriber:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            task = self._pending[1]
            self._pending = None
            task.cancel()
            # A GET that already had its answer (cancel came too late) still holds a connection.
            task.add_done_callback(_release_unused)

    async def _fetch(self, seq: int) -> SubscribedSegment | None:
        """GET segment ``seq`` until its headers arrive, handling 470, EOS, refresh and retries."""
        failures = 0
        catch_ups = 0
        last_error: BaseException | None = None
        while True:
            url = segment_url(self.url, seq)
            try:
                response = await self._get(url)
            except TLS_ERRORS as err:
                raise tls_error(url, err) from err
            except TRANSIENT_ERRORS as err:
                response, last_error = None, err
            if response is not None:
                status = response.status
                if status == 200:
                    if response.headers.get(CLOSED_HEADER):
                        response.release()
                        logger.info("trickle: %s closed (end of stream)", redact_url(self.url))
                        return None
                    served = parse_int_header(response.headers.get(SEQ_HEADER))
                    return SubscribedSegment(served if served is not None else max(seq, 0), response)
                body = await self._drain(response)
                if status == 404:
                    if self.segments_read == 0:
                        raise TrickleChannelNotFound(f"{redact_url(self.url)}: no such channel (404)")
                    logger.info("trickle: %s gone (404, end of stream)", redact_url(self.url))
                    return None
                if status == STATUS_SEQ_UNAVAILABLE:
                    latest = parse_int_header(response.headers.get(LATEST_HEADER))
                    catch_ups += 1
                    if catch_ups > self.max_retries + 1:
                        raise TrickleRetriesExhausted(url, catch_ups, TrickleHTTPError(url, status, body))
                    logger.info(
                        "trickle: %s seq %d unavailable, jumping to %s", redact_url(self.url), seq, latest
                    )
                    seq = latest if latest is not None else SEQ_CURRENT
                    continue
                if status < 500:
                    raise TrickleHTTPError(url, status, body)
                last_error = TrickleHTTPError(url, status, body)
            failures += 1
            if failures > self.max_retries:
                raise TrickleRetriesExhausted(url, failures, last_error)
            delay = backoff_delay(failures, self.retry_backoff_s, self.max_backoff_s)
            logger.warning(
                "trickle: GET %s failed (%r); retry %d in %.2fs", redact_url(url), last_error, failures, delay
            )
            await asyncio.sleep(delay)

    async def _get(self, url: str) -> aiohttp.ClientResponse:
        """Issue the GET; re-issue it whenever it waits more than ``preconnect_refresh_s`` for headers."""
        session = self._http.get()
        self._http.check(url)
        while True:
            request = session.get(url, ssl=self.verify_tls, allow_redirects=False)
            try:
                return await asyncio.wait_for(request, self.preconnect_refresh_s)
            except aiohttp.ServerTimeoutError:
                raise  # connect timeout: a transient failure, not a refresh
            except asyncio.TimeoutError:
                logger.debug("trickle: refreshing pending GET %s", redact_url(url))

    @staticmethod
    async def _drain(response: aiohttp.ClientResponse) -> str:
        try:
            return (await response.content.read(4096)).decode("utf-8", "replace")
        except TRANSIENT_ERRORS:
            return ""
        finally:
            response.release()


def _release_unused(task: asyncio.Task[SubscribedSegment | None]) -> None:
    """Free the segment of a GET nobody will read (and retrieve its error, so none is logged as lost)."""
    if task.cancelled() or task.exception() is not None:
        return
    segment = task.result()
    if segment is not None:
        segment.release()
