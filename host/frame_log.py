"""Keep ComfyUI's "Prompt executed in ..." log line for people's prompts, not for every stream frame.

ComfyUI's prompt worker logs that line after every prompt (``main.py``, through the root logger). A stream
queues one prompt per frame, so a 30 fps stream wrote 30 lines a second into the console and into the log
panel of every open browser (ComfyUI's log interceptor keeps them for ``/internal/logs``): one benchmark
run of 12 streams left 15,635 such lines of 15,804 in ComfyUI's log. A stream's counters, stage times and
``/metrics`` say the same per stream.

A filter on the root logger drops that one line while ComfyUI's server names a stream's frame client id
(``streams.pump.FRAME_CLIENT_PREFIX``) as the current prompt's client: the executor sets
``server.client_id`` to the prompt's client id before it runs it and nothing resets it before the line is
logged, on the same thread. Every other record passes; a server without ``client_id`` is left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from ..streams.pump import is_frame_client

logger = logging.getLogger(__name__)

PROMPT_DONE_PREFIX = "Prompt executed in "


class FramePromptLogFilter(logging.Filter):
    """Drops ComfyUI's per-prompt timing line of a stream's frame prompts (see the module docstring)."""

    def __init__(self, server: Any) -> None:
        super().__init__()
        self._server = server

    def filter(self, record: logging.LogRecord) -> bool:
        if not (isinstance(record.msg, str) and record.msg.startswith(PROMPT_DONE_PREFIX)):
            return True
        return not is_frame_client(getattr(self._server, "client_id", None))


def quiet_frame_prompt_logs(server: Any, root: logging.Logger | None = None) -> bool:
    """Add the filter to ``root`` (default: the root logger) once; False when ``server`` has no
    ``client_id`` (the line is then kept)."""
    if not hasattr(server, "client_id"):
        logger.info("comfy-trickle: ComfyUI's server has no client_id; its per-prompt log line stays")
        return False
    root = root if root is not None else logging.getLogger()
    if not any(isinstance(existing, FramePromptLogFilter) for existing in root.filters):
        root.addFilter(FramePromptLogFilter(server))
    return True
