"""JSON answers and the error discipline shared by every handler of ours.

Bad input is an ``ApiError`` (``streams.errors``: ours and the stream engine's); it becomes its status with
``{"error": message, **details}`` and its headers, here and nowhere else. Anything else is a bug: logged
with its traceback, answered 500.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..streams.errors import ApiError

logger = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[web.StreamResponse]]


def error_response(error: ApiError) -> web.Response:
    """The answer to ``error``: ``{"error": message, **details}`` with its status and headers."""
    return web.json_response(error.body(), status=error.http_status, headers=error.headers)


def json_errors(handler: Handler) -> Handler:
    """Wrap a handler (function or method; the request is its last argument) so expected errors
    answer 4xx JSON and unexpected ones a logged 500."""

    @functools.wraps(handler)
    async def wrapper(*args: Any) -> web.StreamResponse:
        request: web.Request = args[-1]
        try:
            return await handler(*args)
        except ApiError as err:
            return error_response(err)
        except web.HTTPException:
            raise  # aiohttp's own answers (e.g. 405) are already proper responses
        except Exception as err:
            logger.exception("comfy-trickle: %s %s failed", request.method, request.path)
            return error_response(ApiError(500, f"Internal error: {type(err).__name__}: {err}"))

    return wrapper
