"""``streams.executor.PromptRunner`` on ComfyUI's own prompt queue.

Stream frames go through ``PromptServer.instance.prompt_queue``, the queue the UI's Queue button feeds,
so they share ComfyUI's one executor thread fairly with user prompts. Submission mirrors ``POST /prompt``
(harness notes): the 6-tuple ``(number, prompt_id, prompt, extra_data, outputs, sensitive)``, ``number``
taken from ``server.number``, the frame's secret in ``sensitive``, and ``client_id`` always set (without
one ComfyUI sends almost no messages and leaves cached outputs out of history).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..streams.executor import PromptOutcome, PromptState, ValidationResult
from .running_prompt import FRAME_SECRET_KEY
from .validation import WorkflowValidator

logger = logging.getLogger(__name__)

# History entries of prompts that were running when forgotten are deleted once they appear; this bounds
# how long we keep looking for one (a prompt that runs longer keeps its entry, like any user prompt).
FORGET_RETRY_S = 0.5
FORGET_GIVE_UP_S = 600.0


class ComfyPromptRunner:
    """Validates through a ``WorkflowValidator``; queues, observes and forgets prompts on ``server``.

    ``server`` needs ``number``, ``loop`` and ``prompt_queue`` (``put``, ``get_current_queue_volatile``,
    ``get_history``, ``delete_queue_item``, ``delete_history_item``), as ``PromptServer.instance`` has.
    """

    def __init__(
        self, server: Any, validator: WorkflowValidator, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._server = server
        self._queue = server.prompt_queue
        self._validator = validator
        self._clock = clock
        self._lock = threading.Lock()
        self._forget_later: dict[str, float] = {}  # prompt id -> when we give up looking
        self._purge_scheduled = False

    async def validate(self, workflow: dict[str, Any], output_node_ids: list[str]) -> ValidationResult:
        return await self._validator.validate(workflow, output_node_ids)

    def submit(self, prompt: dict[str, Any], output_node_ids: list[str], client_id: str, secret: str) -> str:
        prompt_id = str(uuid.uuid4())
        with self._lock:  # the worker thread and the event loop both submit
            number = self._server.number
            self._server.number += 1
        extra_data = {"client_id": client_id, "create_time": int(time.time() * 1000)}
        # the sixth element is ComfyUI's sensitive extra data: GET /queue and history never show it
        sensitive = {FRAME_SECRET_KEY: secret}
        self._queue.put((number, prompt_id, prompt, extra_data, list(output_node_ids), sensitive))
        return prompt_id

    def outcome(self, prompt_id: str) -> PromptOutcome:
        # Queue first, history second: a prompt moves from "running" into history atomically under the
        # queue's lock, so this order never reports a finishing prompt as lost.
        running, queued = self._queue.get_current_queue_volatile()
        if any(item[1] == prompt_id for item in running) or any(item[1] == prompt_id for item in queued):
            return PromptOutcome(PromptState.PENDING)
        found = self._queue.get_history(prompt_id=prompt_id, map_function=lambda entry: entry.get("status"))
        if prompt_id not in found:
            return PromptOutcome(PromptState.LOST)
        return outcome_of_status(found[prompt_id])

    def forget(self, prompt_id: str) -> None:
        self._queue.delete_queue_item(lambda item: item[1] == prompt_id)
        if self._queue.get_history(prompt_id=prompt_id, map_function=lambda entry: True):
            self._queue.delete_history_item(prompt_id)
            return
        running, _ = self._queue.get_current_queue_volatile()
        if any(item[1] == prompt_id for item in running):
            with self._lock:
                self._forget_later[prompt_id] = self._clock() + FORGET_GIVE_UP_S
            self._schedule_purge()

    def _schedule_purge(self) -> None:
        with self._lock:
            if self._purge_scheduled:
                return
            self._purge_scheduled = True
        loop = self._server.loop
        loop.call_soon_threadsafe(loop.call_later, FORGET_RETRY_S, self._purge)

    def _purge(self) -> None:
        with self._lock:
            self._purge_scheduled = False
            pending = dict(self._forget_later)
        now = self._clock()
        for prompt_id, give_up in pending.items():
            if self._queue.get_history(prompt_id=prompt_id, map_function=lambda entry: True):
                self._queue.delete_history_item(prompt_id)
            elif now < give_up:
                continue
            with self._lock:
                self._forget_later.pop(prompt_id, None)
        with self._lock:
            left = bool(self._forget_later)
        if left:
            self._schedule_purge()


def outcome_of_status(status: dict[str, Any] | None) -> PromptOutcome:
    """A history entry's ``status`` (``status_str``, ``messages``) as a ``PromptOutcome``."""
    if not status:
        return PromptOutcome(PromptState.SUCCESS)
    for event, data in status.get("messages", []):
        if event == "execution_interrupted":
            node_id, node_type = data.get("node_id"), data.get("node_type")
            return PromptOutcome(PromptState.INTERRUPTED, node_id, node_type, "interrupted")
        if event == "execution_error":
            message = data.get("exception_message") or data.get("exception_type") or "node failed"
            return PromptOutcome(PromptState.ERROR, data.get("node_id"), data.get("node_type"), message)
    if status.get("status_str") == "success":
        return PromptOutcome(PromptState.SUCCESS)
    return PromptOutcome(PromptState.ERROR, message="prompt failed")
