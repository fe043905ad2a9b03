"""Typed errors of the trickle client. Everything raised on purpose derives from ``TrickleError``."""

from __future__ import annotations


class TrickleError(Exception):
    """Base class of every trickle client error."""


class TrickleHTTPError(TrickleError):
    """The server answered with an unexpected status."""

    def __init__(self, url: str, status: int, body: str = "") -> None:
        super().__init__(f"{url}: HTTP {status}" + (f": {body[:200]}" if body else ""))
        self.url = url
        self.status = status
        self.body = body


class TrickleTLSError(TrickleError):
    """The server's TLS certificate was refused (use ``verify_tls=False`` for self-signed servers)."""


class TrickleChannelNotFound(TrickleError):
    """The channel does not exist (404) before anything was read from it: a wrong URL, usually."""


class TrickleChannelClosed(TrickleError):
    """The channel is gone (404 or ``Lp-Trickle-Closed``) while publishing: terminal for a publisher."""


class TrickleRetriesExhausted(TrickleError):
    """Transient failures went on for longer than the retry budget."""

    def __init__(self, url: str, attempts: int, last_error: BaseException | None) -> None:
        super().__init__(f"{url}: gave up after {attempts} attempts; last error: {last_error!r}")
        self.url = url
        self.attempts = attempts
        self.last_error = last_error


class TrickleSegmentError(TrickleError):
    """One segment failed part-way (its bytes were partly sent or received); the channel may go on."""

    def __init__(self, message: str, seq: int) -> None:
        super().__init__(message)
        self.seq = seq


class TrickleClosedError(TrickleError):
    """The client object was used after ``close()``."""
