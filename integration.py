"""Glue between the ComfyUI-free core and a running ComfyUI.

Called from ``comfy_entrypoint`` while ComfyUI loads custom nodes, which is before it freezes its
routes, so registering our HTTP handlers here still lands them on the server (and under ``/api``).
Builds the one ``StreamRegistry`` of this process on a ``ComfyPromptRunner``.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from typing import Any

from ._comfy import ComfyExtension, io
from .nodes.frames import frame_to_image
from .nodes.live_io import TrickleInput, TrickleOutput
from .streams.errors import node_error
from .streams.executor import PromptOutcome, PromptState, ValidationResult
from .streams.registry import StreamRegistry

logger = logging.getLogger(__name__)

# History entries of prompts that were running when forgotten are deleted once they appear; this bounds
# how long we keep looking for one (a prompt that runs longer keeps its entry, like any user prompt).
FORGET_RETRY_S = 0.5
FORGET_GIVE_UP_S = 600.0



def combo_value_errors(
    prompt: dict[str, Any], class_mappings: dict[str, Any], output_node_ids: list[str]
) -> dict[str, Any]:
    """``node_errors`` (ComfyUI's shape, ``value_not_in_list``) for dropdown values not among their options.

    ComfyUI 0.3.75 checks a dropdown's value only when ``INPUT_TYPES`` declares it as a plain list (V1
    nodes); V3 nodes declare ``("COMBO", {"options": [...]})``, which it lets through, so a bad value
    (e.g. ``ImageBlend``'s ``blend_mode: "sideways"``) would start the stream and fail on the first frame.
    Linked inputs (``[node_id, slot]`` lists), multi-select and remote (empty) option lists are skipped.
    """
    errors: dict[str, Any] = {}
    for node_id, node in prompt.items():
        class_def = class_mappings.get(node.get("class_type"))
        if class_def is None:
            continue
        try:
            declared = class_def.INPUT_TYPES()
        except Exception:  # a node whose schema cannot be read is left to ComfyUI's own checks
            logger.debug("comfy-trickle: INPUT_TYPES of %s failed", node.get("class_type"), exc_info=True)
            continue
        node_errors = []
        for category in ("required", "optional"):
            for input_name, info in (declared.get(category) or {}).items():
                if input_name not in node.get("inputs", {}) or not isinstance(info, (list, tuple)):
                    continue
                value = node["inputs"][input_name]
                extra = info[1] if len(info) > 1 and isinstance(info[1], dict) else {}
                options = extra.get("options")
                if (info[0] != "COMBO" or isinstance(value, list) or not isinstance(options, list)
                        or not options or extra.get("multi_select")):
                    continue
                if value in options:
                    continue
                listed = str(options) if len(options) <= 20 else f"(list of length {len(options)})"
                node_errors.append({
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": f"{input_name}: {value!r} not in {listed}",
                    "extra_info": {
                        "input_name": input_name,
                        "input_config": list(info) if len(options) <= 20 else None,
                        "received_value": value,
                    },
                })
        if node_errors:
            errors[node_id] = {
                "errors": node_errors,
                "dependent_outputs": list(output_node_ids),
                "class_type": node["class_type"],
            }
    return errors

class ComfyPromptRunner:
    """``streams.executor.PromptRunner`` on ``PromptServer.instance.prompt_queue`` (see harness notes:
    the 6-tuple ``put``, ``number`` from ``server.number``, ``client_id`` always set)."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self._queue = server.prompt_queue
        self._lock = threading.Lock()
        self._forget_later: dict[str, float] = {}  # prompt id -> when we gave up looking
        self._purge_scheduled = False

    async def validate(self, workflow: dict[str, Any], output_node_ids: list[str]) -> ValidationResult:
        import execution

        import nodes

        prompt = copy.deepcopy(workflow)
        # ComfyUI stops at the first unknown class without naming it in node_errors; name them all.
        unknown: dict[str, Any] = {}
        for node_id, node in prompt.items():
            if node["class_type"] not in nodes.NODE_CLASS_MAPPINGS:
                unknown.update(
                    node_error(
                        node_id,
                        node["class_type"],
                        "invalid_prompt",
                        f"Node type {node['class_type']} does not exist (is its custom node pack installed?)",
                        f"Node ID '#{node_id}'",
                    )
                )
        if unknown:
            error = {"type": "invalid_prompt", "message": "Unknown node types", "details": ""}
            return ValidationResult(False, error, [], unknown, prompt)
        ok, error, outputs, node_errors = await execution.validate_prompt(
            str(uuid.uuid4()), prompt, list(output_node_ids)
        )
        if ok and not node_errors:
            combo_errors = combo_value_errors(prompt, nodes.NODE_CLASS_MAPPINGS, list(output_node_ids))
            if combo_errors:
                error = {
                    "type": "prompt_outputs_failed_validation",
                    "message": "Prompt outputs failed validation",
                    "details": "",
                    "extra_info": {},
                }
                return ValidationResult(False, error, list(outputs), combo_errors, prompt)
        return ValidationResult(bool(ok), error, list(outputs), dict(node_errors or {}), prompt)

    def submit(self, prompt: dict[str, Any], output_node_ids: list[str], client_id: str) -> str:
        prompt_id = str(uuid.uuid4())
        with self._lock:
            number = self._server.number
            self._server.number += 1
        extra_data = {"client_id": client_id, "create_time": int(time.time() * 1000)}
        self._queue.put((number, prompt_id, prompt, extra_data, list(output_node_ids), {}))
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
        return _outcome_of(found[prompt_id])

    def forget(self, prompt_id: str) -> None:
        self._queue.delete_queue_item(lambda item: item[1] == prompt_id)
        if self._queue.get_history(prompt_id=prompt_id, map_function=lambda entry: True):
            self._queue.delete_history_item(prompt_id)
            return
        running, _ = self._queue.get_current_queue_volatile()
        if any(item[1] == prompt_id for item in running):
            with self._lock:
                self._forget_later[prompt_id] = time.monotonic() + FORGET_GIVE_UP_S
            self._schedule_purge()

    def _schedule_purge(self) -> None:
        with self._lock:
            if self._purge_scheduled:
                return
            self._purge_scheduled = True
        self._server.loop.call_soon_threadsafe(self._server.loop.call_later, FORGET_RETRY_S, self._purge)

    def _purge(self) -> None:
        with self._lock:
            self._purge_scheduled = False
            pending = dict(self._forget_later)
        now = time.monotonic()
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


def _outcome_of(status: dict[str, Any] | None) -> PromptOutcome:
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


# At most this often ComfyUI's `status` broadcast (queue size) goes out; see _coalesce_queue_updates.
QUEUE_STATUS_INTERVAL_S = 0.25


def _coalesce_queue_updates(server: Any) -> None:
    """Coalesce ComfyUI's ``status`` broadcasts to at most one per ``QUEUE_STATUS_INTERVAL_S``.

    Every prompt put into or finished by the queue calls ``server.queue_updated()``, which broadcasts to
    every open browser; the frontend answers each broadcast with GET /queue and two GET /history. A live
    stream queues one prompt per frame (15-30 a second), which froze the web UI: 427 broadcasts and 1281
    requests in 6 s, the page unresponsive for 30 s. The newest queue state is always sent (a trailing
    call), only the rate changes. Replaces the bound method on the server *instance*, nothing else.
    """
    original = server.queue_updated
    loop = server.loop
    lock = threading.Lock()
    state = {"pending": False, "last": 0.0}

    def flush() -> None:
        with lock:
            state["pending"] = False
            state["last"] = time.monotonic()
        original()

    def queue_updated() -> None:  # called from the prompt worker thread and from the event loop
        with lock:
            if state["pending"]:
                return
            wait = state["last"] + QUEUE_STATUS_INTERVAL_S - time.monotonic()
            if wait > 0:
                state["pending"] = True
            else:
                state["last"] = time.monotonic()
        if wait > 0:
            loop.call_soon_threadsafe(loop.call_later, wait, flush)
        else:
            original()

    server.queue_updated = queue_updated


class TrickleExtension(ComfyExtension):
    """Hands ComfyUI our node classes."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [TrickleInput, TrickleOutput]


_registry: StreamRegistry | None = None


def stream_registry() -> StreamRegistry | None:
    """The process's registry once ComfyUI loaded the pack (None before)."""
    return _registry


async def build_extension() -> TrickleExtension:
    """Create the registry, register routes on ``PromptServer.instance``, return the extension."""
    global _registry
    from server import PromptServer

    from .dev.routes import DevRoutes
    from .routes.preview import PreviewRoutes
    from .routes.settings import TrickleSettings
    from .routes.streams import register_stream_routes

    server = PromptServer.instance
    settings = TrickleSettings.from_env()
    _registry = StreamRegistry(
        ComfyPromptRunner(server),
        max_streams=settings.max_streams,
        notifier=lambda event, payload: server.send_sync(event, payload),
        prepare_frame=frame_to_image,
    )
    register_stream_routes(server.routes, _registry, settings)
    _coalesce_queue_updates(server)  # a stream's per-frame prompts must not flood every browser
    preview_routes = PreviewRoutes(_registry, settings)
    preview_routes.setup_routes(server.routes)
    if settings.dev_relay:
        dev_routes = DevRoutes(settings)
        dev_routes.setup_routes(server.routes)
        dev_routes.attach_lifecycle(server.app)

    async def stop_streams(app: Any) -> None:
        if _registry is not None:
            await _registry.stop_all()
        await preview_routes.close()  # its JPEG encoder thread

    server.app.on_shutdown.append(stop_streams)
    logger.info("comfy-trickle: routes registered, up to %d streams", settings.max_streams)
    return TrickleExtension()
