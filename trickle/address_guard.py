"""The connect-time host check of trickle clients: a resolver that refuses addresses not allowed.

A URL checked once by name is not enough: a name can resolve to another address by the time we connect
(DNS rebinding), and a redirect can point anywhere. So the clients follow no redirects (a trickle server
never needs one) and, when given an ``AddressCheck``, resolve every name through ``CheckedResolver``,
which asks the check about each address the name resolved to and refuses the connection when none may
be used. IP literals never reach a resolver; ``check_literal`` covers them before each request.

The check itself (which hosts are allowed) is the server's policy and is passed in as a callable
(``routes.security.HostAllowlist.address_allowed`` in production): this package imports only aiohttp.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from .errors import TrickleError

# (host name as written in the URL, the IP address it resolved to, port) -> may we connect?
AddressCheck = Callable[[str, str, int], bool]


class TrickleHostRefused(TrickleError):
    """The host (or the address its name resolved to) is not allowed; never retried."""


class CheckedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then keeps only the addresses ``check`` allows."""

    def __init__(self, check: AddressCheck) -> None:
        self._check = check
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [result for result in results if self._check(host, result["host"], result["port"])]
        if not allowed:
            raise TrickleHostRefused(f"trickle host {host!r} resolves to an address that is not allowed")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def check_literal(url: str, check: AddressCheck | None) -> None:
    """Raise ``TrickleHostRefused`` when ``url``'s host is an IP address ``check`` refuses."""
    if check is None:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not check(host, host, port):
        raise TrickleHostRefused(f"trickle host {host!r} is not allowed")
