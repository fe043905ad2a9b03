"""Run a ``TrickleRelay`` on a TCP port: an async context manager for tests/demos and the CLI's server."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .relay import TrickleRelay

logger = logging.getLogger(__name__)


@dataclass
class RunningRelay:
    """A relay served on ``host:port``. ``url`` is the base URL, ending in ``/``."""

    relay: TrickleRelay
    host: str
    port: int
    url: str

    def channel_url(self, name: str) -> str:
        """The URL of channel ``name`` (what publishers and subscribers are given)."""
        return self.url + name

    def __str__(self) -> str:
        return self.url


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()  # a port in use must not leak the socket
        raise
    return sock


@asynccontextmanager
async def serve_relay(
    relay: TrickleRelay | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    prefix: str = "/",
    ssl_context: ssl.SSLContext | None = None,
    channels: Iterable[tuple[str, str]] = (),
    **relay_options: Any,
) -> AsyncIterator[RunningRelay]:
    """Serve a relay on ``host:port`` (0 = a free port) for the duration of the ``async with``.

    ``relay_options`` go to ``TrickleRelay`` when no ``relay`` is given; ``channels`` are
    ``(name, mime_type)`` pairs created server-side before the first request. On exit every channel is
    closed first, so waiting subscribers get end of stream and the shutdown never waits on them.
    """
    relay = relay if relay is not None else TrickleRelay(**relay_options)
    for name, mime_type in channels:
        relay.create_channel(name, mime_type)
    # Bind first: a port in use then fails before the app's start-up has started the relay's sweeper.
    sock = _bind(host, port)
    app = relay.make_app(prefix)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    try:
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=ssl_context)
        await site.start()
        bound_port = sock.getsockname()[1]
        scheme = "https" if ssl_context is not None else "http"
        url_host = f"[{host}]" if ":" in host else host
        base = prefix.strip("/")
        url = f"{scheme}://{url_host}:{bound_port}/" + (base + "/" if base else "")
        logger.info("trickle relay serving on %s", url)
        yield RunningRelay(relay=relay, host=host, port=bound_port, url=url)
    finally:
        await relay.close()
        await runner.cleanup()
        sock.close()


async def run_forever(
    host: str, port: int, *, prefix: str = "/", channels: Iterable[tuple[str, str]] = (), **relay_options: Any
) -> None:
    """Serve until cancelled (the CLI's ``serve`` command)."""
    async with serve_relay(
        host=host, port=port, prefix=prefix, channels=channels, **relay_options
    ) as running:
        logger.info("trickle relay ready at %s (autocreate=%s)", running.url, running.relay.autocreate)
        await asyncio.Event().wait()
