"""Typed errors of the trickle client. Everything raised on purpose derives from ``TrickleError``."""

from __future__ import annotations

from .redact import redact_text, redact_url


class TrickleError(Exception):
    """Base class of every trickle client error."""


class TrickleHTTPError(TrickleError):
    """The server answered with an unexpected status.

    The message names the (redacted) URL and the status only: the remote body is kept in ``body`` for
    callers that trust the server, but never shown, so an error cannot be used to read other services'
    answers (a probe of internal ports through a stream's status).
    """

    def __init__(self, url: str, status: int, body: str = "") -> None:
        hint = " (redirects are not followed)" if 300 <= status < 400 else ""
        super().__init__(f"{redact_url(url)}: HTTP {status}{hint}")
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
        last = redact_text(repr(last_error))
        super().__init__(f"{redact_url(url)}: gave up after {attempts} attempts; last error: {last}")
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
