"""JSON answers and the error discipline shared by every handler of ours.

Bad input is a ``RequestError`` (ours) or a ``StreamError`` (the stream engine's); both become a 4xx with
a JSON body saying what is wrong. Anything else is a bug: logged with its traceback, answered 500.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..streams.config import RequestError
from ..streams.errors import StreamError

logger = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[web.StreamResponse]]


def error_response(status: int, message: str, **details: Any) -> web.Response:
    """``{"error": message, **details}`` with ``status``."""
    return web.json_response({"error": message, **details}, status=status)


def json_errors(handler: Handler) -> Handler:
    """Wrap a handler (function or method; the request is its last argument) so expected errors
    answer 4xx JSON and unexpected ones a logged 500."""

    @functools.wraps(handler)
    async def wrapper(*args: Any) -> web.StreamResponse:
        request: web.Request = args[-1]
        try:
            return await handler(*args)
        except RequestError as err:
            return web.json_response(err.to_json(), status=err.status, headers=err.headers)
        except StreamError as err:
            return web.json_response(err.body(), status=err.http_status)
        except web.HTTPException:
            raise  # aiohttp's own answers (e.g. 405) are already proper responses
        except Exception as err:
            logger.exception("comfy-trickle: %s %s failed", request.method, request.path)
            return error_response(500, f"Internal error: {type(err).__name__}: {err}")

    return wrapper
