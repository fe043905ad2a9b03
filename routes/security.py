"""Request guards for our routes: bearer token, trickle host allowlist, request size limit.

ComfyUI's aiohttp app has its middlewares fixed before custom nodes load, so these are plain
functions (and the ``requires_token`` decorator) the handlers use, raising ``ApiError`` (the routes
turn it into the JSON answer).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from ..streams.errors import ApiError
from .settings import TrickleSettings

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class HasSettings(Protocol):
    """A routes object: its handlers read the token from ``settings``."""

    settings: TrickleSettings


RoutesT = TypeVar("RoutesT", bound=HasSettings)
RoutesHandler = Callable[[RoutesT, web.Request], Awaitable[web.StreamResponse]]


def _check_bearer_token(request: web.Request, token: str) -> None:
    """Raise 401 unless ``Authorization: Bearer <token>`` matches; no-op when no token is set."""
    if not token:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    # compare_digest keeps the comparison time independent of how much of the token matches.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        reason = "Missing bearer token" if not header else "Invalid bearer token"
        raise ApiError(401, reason, headers={"WWW-Authenticate": 'Bearer realm="comfy-trickle"'})


def requires_token(handler: RoutesHandler[RoutesT]) -> RoutesHandler[RoutesT]:
    """Decorate a routes method so it answers 401 unless the request carries ``self.settings.token``
    (no check when no token is set). Put it under ``@json_errors``, which turns the 401 into JSON."""

    @functools.wraps(handler)
    async def guarded(routes: RoutesT, request: web.Request) -> web.StreamResponse:
        _check_bearer_token(request, routes.settings.token)
        return await handler(routes, request)

    return guarded


class HostAllowlist:
    """Which trickle hosts a stream may talk to: loopback always, others only when configured.

    Entries are ``host`` (any port) or ``host:port`` (``[v6addr]:port`` for IPv6); ``*`` allows any
    host. Without this a caller could make ComfyUI's machine connect anywhere on its behalf.
    """

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.allow_any = False
        self._hosts: set[str] = set()
        self._host_ports: set[tuple[str, int]] = set()
        for entry in entries:
            entry = entry.strip().lower()
            if not entry:
                continue
            if entry == "*":
                self.allow_any = True
                continue
            host, port = _split_host_port(entry)
            if port is None:
                self._hosts.add(host)
            else:
                self._host_ports.add((host, port))

    def is_allowed(self, url: str) -> bool:
        """True when ``url``'s host (and port) may be used."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            return False
        if self.allow_any or _is_loopback(host) or host in self._hosts:
            return True
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return (host, port) in self._host_ports

    def address_allowed(self, host: str, address: str, port: int) -> bool:
        """The connect-time check (``trickle.address_guard.AddressCheck``): may we connect to ``address``,
        which ``host`` resolved to? Loopback only when the address really is loopback (a name such as
        ``localhost`` that resolves elsewhere is refused); configured entries by name or by address."""
        host, address = host.lower().strip("[]"), address.lower()
        if self.allow_any or _is_loopback_address(address):
            return True
        if host in self._hosts or address in self._hosts:
            return True
        return (host, port) in self._host_ports or (address, port) in self._host_ports

    def check_urls(self, urls: Mapping[str, str]) -> None:
        """Raise 403 naming the first field whose host is not allowed."""
        for field_name, url in urls.items():
            if not self.is_allowed(url):
                parts = urlsplit(url)
                where = parts.netloc or url
                raise ApiError(
                    403,
                    f"Trickle host {where!r} in {field_name} is not allowed; loopback is allowed by default, "
                    "add other hosts to COMFY_TRICKLE_ALLOWED_HOSTS (comma separated, host or host:port)",
                    {"field": field_name, "host": parts.hostname or ""},
                )


async def read_json_body(request: web.Request, max_bytes: int) -> Any:
    """Read and decode a JSON request body of at most ``max_bytes``; 413 when larger, 400 when not JSON.

    The declared Content-Length is checked first; chunked bodies are counted while reading, so a body
    without a length cannot get past the limit either.
    """
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise ApiError(413, _too_large(max_bytes), {"max_bytes": max_bytes})
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, _too_large(max_bytes), {"max_bytes": max_bytes})
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(400, "Request body is empty; expected a JSON object")
    try:
        return json.loads(raw)
    except UnicodeDecodeError as err:
        raise ApiError(400, f"Request body is not UTF-8 JSON: {err}") from err
    except ValueError as err:
        raise ApiError(400, f"Request body is not valid JSON: {err}") from err
    except RecursionError:
        # json's decoder recurses once per nesting level: a small body of brackets exhausts the stack.
        raise ApiError(400, "Request body is nested too deeply to be a stream request") from None


def _too_large(max_bytes: int) -> str:
    return f"Request body too large: the limit is {max_bytes} bytes (COMFY_TRICKLE_MAX_REQUEST_BYTES)"


def _split_host_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6]:port or [v6]
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


def _is_loopback_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
