"""Skip ComfyUI's websocket messages about stream frames that no websocket listens to.

ComfyUI's executor reports each prompt to its ``client_id`` through ``PromptServer.send_sync``
(``execution_start``, ``execution_cached``, ``executing`` per node, ``progress_state``,
``execution_success``, ...): each call wakes the server's event loop through its self-pipe and queues the
message, and ``PromptServer.send`` then drops it when no websocket has that client id. A stream queues a
prompt per frame under its own client id (``streams.pump.FRAME_CLIENT_PREFIX`` + stream id), which no
browser uses, so these wake-ups were pure cost on ComfyUI's one executor thread and on the loop: in
py-spy samples of a 512x512 passthrough stream fed faster than it runs, a fifth of the worker thread's
time was ``send_sync``'s self-pipe write (``bench/README.md``).

So ``send_sync`` is wrapped on the server *instance* (as ``queue_updates`` wraps ``queue_updated``): a
message addressed to a frame client id with no websocket connected under it returns at once, as
``PromptServer.send`` would have dropped it a moment later. Everything else, including every broadcast
and any websocket that does listen under a stream's client id (tests count executions that way), goes
through unchanged. A server without a ``sockets`` dict is left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from ..streams.pump import is_frame_client

logger = logging.getLogger(__name__)

SID_POSITION = 2  # send_sync(event, data, sid)


def skip_unheard_frame_messages(server: Any) -> bool:
    """Wrap ``server.send_sync`` (``server`` is ``PromptServer.instance``); False when left alone."""
    sockets = getattr(server, "sockets", None)
    original = getattr(server, "send_sync", None)
    if not isinstance(sockets, dict) or not callable(original):
        logger.info("comfy-trickle: ComfyUI's send_sync or sockets not found; frame messages go out as is")
        return False

    def send_sync(*args: Any, **kwargs: Any) -> Any:
        sid = args[SID_POSITION] if len(args) > SID_POSITION else kwargs.get("sid")
        if is_frame_client(sid) and sid not in server.sockets:
            return None
        return original(*args, **kwargs)

    server.send_sync = send_sync
    return True
