"""Hiding the secrets a trickle URL can carry before the URL is shown or logged.

Gateways put credentials in URLs: ``https://user:password@host/...`` and signed query strings
(``?token=...``, ``?sig=...``). Every status body, websocket event, log line and error message of ours
that shows a URL passes it through ``redact_url`` (or ``redact_text`` for messages that embed URLs), so
a secret given in a start request never leaves the server again. The URL keeps scheme, host, port and
path (enough to tell streams apart); credentials and every query value become ``REDACTED``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"
_URL_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` without user info and with every query value (and any fragment) replaced by ``REDACTED``."""
    if not isinstance(url, str) or not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # not parseable: show nothing of it rather than risk a secret
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        shown_host = f"[{host}]" if ":" in host else host
        netloc = f"{REDACTED}@{shown_host}" + (f":{port}" if port is not None else "")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(key, REDACTED) for key, _ in pairs], safe=REDACTED) if pairs else REDACTED
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (error messages that quote a URL)."""
    if not isinstance(text, str) or "://" not in text:
        return text
    return _URL_PATTERN.sub(lambda match: redact_url(match.group(0)), text)
