"""HTTP plumbing shared by the subscriber and publisher: session ownership, error classes, back-off."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping

import aiohttp

from .address_guard import AddressCheck, CheckedResolver, check_literal
from .errors import TrickleClosedError, TrickleTLSError
from .redact import redact_url

# Failures worth retrying: the connection broke, timed out or the server vanished for a moment.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    asyncio.TimeoutError,
    ConnectionError,
)
# Certificate and handshake problems are configuration errors: retrying cannot help.
TLS_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientSSLError, ssl.SSLError)


def tls_error(url: str, err: BaseException) -> TrickleTLSError:
    return TrickleTLSError(
        f"{redact_url(url)}: TLS failed ({err}); pass verify_tls=False to accept self-signed servers"
    )


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential back-off: base, 2*base, 4*base ... capped at ``max_s`` (attempt counts from 1)."""
    return min(base_s * 2.0 ** (attempt - 1), max_s)


class SessionHolder:
    """Uses the caller's ``ClientSession`` or lazily owns one (created on the running loop, closed by us)."""

    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        connect_timeout_s: float,
        *,
        address_check: AddressCheck | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._session = session
        self._owned = session is None
        self._connect_timeout_s = connect_timeout_s
        self.address_check = address_check  # applied to sessions we own (see address_guard)
        self.headers = dict(headers or {})  # sent with every request (e.g. Authorization)
        self.closed = False

    def check(self, url: str) -> None:
        """Refuse ``url`` before any request when its host is an IP literal the address check refuses."""
        check_literal(url, self.address_check)

    @property
    def owned_session(self) -> aiohttp.ClientSession | None:
        """The session we created (None if the caller supplied one or none exists yet)."""
        return self._session if self._owned else None

    def get(self) -> aiohttp.ClientSession:
        if self.closed:
            raise TrickleClosedError("client is closed")
        if self._session is None:
            # No total/read timeout: a GET may legitimately wait for the next segment indefinitely, and
            # a POST lasts as long as its segment. Only connecting is bounded.
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout_s)
            connector = None
            if self.address_check is not None:
                connector = aiohttp.TCPConnector(resolver=CheckedResolver(self.address_check))
            self._session = aiohttp.ClientSession(timeout=timeout, connector=connector, headers=self.headers)
        return self._session

    async def close(self) -> None:
        self.closed = True
        if self._owned and self._session is not None and not self._session.closed:
            await self._session.close()
