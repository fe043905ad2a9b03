"""The secret of the prompt ComfyUI is running now, as the live nodes present it to their stream.

``ComfyPromptRunner.submit`` puts a stream frame's secret into the queue item's sixth element, ComfyUI's
sensitive extra data (``GET /queue`` and history strip it; ``POST /prompt`` only fills it with ComfyUI's
own API-key fields). Nodes run on ComfyUI's one worker thread while their prompt is the running item, so
the running item tells a node which secret its prompt carries (see ``streams.bridge``). V3 nodes get no
prompt id of their own, and a prompt id would not do anyway: ``POST /prompt`` lets a caller choose it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, NoReturn

from ..streams.errors import StreamNotBound

logger = logging.getLogger(__name__)

FRAME_SECRET_KEY = "comfy_trickle_frame_secret"  # noqa: S105 - the key's name, not a secret


def running_prompt_secret(server: Any = None) -> str | None:
    """The frame secret of the running prompt; None when none runs, it has none, or (never seen in
    ComfyUI, which runs one prompt at a time) several run and the node's own cannot be told apart."""
    if server is None:
        # ComfyUI's ``server`` module, looked up rather than imported: where it is not loaded (the pack
        # imported outside ComfyUI, unit tests) no prompt runs
        prompt_server = getattr(sys.modules.get("server"), "PromptServer", None)
        server = getattr(prompt_server, "instance", None)
    queue = getattr(server, "prompt_queue", None)
    if queue is None:
        return None
    running, _ = queue.get_current_queue_volatile()
    if len(running) != 1 or len(running[0]) < 6 or not isinstance(running[0][5], dict):
        return None
    secret = running[0][5].get(FRAME_SECRET_KEY)
    return secret if isinstance(secret, str) else None


def end_running_prompt(reason: str) -> NoReturn:
    """End the running prompt the way ComfyUI's Interrupt does: for a race that is expected (a stream's
    prompt finding the stream stopped), so one log line instead of ComfyUI's traceback for any other
    exception a node raises. Outside ComfyUI (``comfy.model_management`` not loaded) raises
    ``StreamNotBound``."""
    logger.info("comfy-trickle: %s", reason)
    model_management = sys.modules.get("comfy.model_management")
    interrupt = getattr(model_management, "InterruptProcessingException", None)
    if interrupt is None:
        raise StreamNotBound(reason)
    raise interrupt(reason)
