"""Small fakes of the few ComfyUI objects the ``host`` package touches (for tests/test_host_*.py).

They copy ComfyUI 0.3.75's observable behaviour (execution.PromptQueue, PromptServer, validate_prompt),
not its code: enough to check what ``host`` does with them, never a stand-in for the real-ComfyUI tests.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from aiohttp import web


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeLoop:
    """``call_soon_threadsafe`` runs at once; ``call_later`` is recorded and run by the test."""

    def __init__(self) -> None:
        self.later: list[tuple[float, Callable[[], Any]]] = []

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        callback(*args)

    def call_later(self, delay: float, callback: Callable[[], Any]) -> None:
        self.later.append((delay, callback))

    def run_later(self) -> int:
        """Run what is scheduled now (callbacks may schedule more, kept for the next call)."""
        due, self.later = self.later, []
        for _delay, callback in due:
            callback()
        return len(due)


class FakePromptQueue:
    """ComfyUI's PromptQueue as seen from outside: queued items, running items, history."""

    def __init__(self) -> None:
        self.queued: list[tuple[Any, ...]] = []
        self.running: list[tuple[Any, ...]] = []
        self.history: dict[str, dict[str, Any]] = {}
        self.history_deletes: list[str] = []

    def put(self, item: tuple[Any, ...]) -> None:
        self.queued.append(item)

    def get_current_queue_volatile(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        return list(self.running), list(self.queued)

    def get_history(
        self, prompt_id: str | None = None, map_function: Callable[[Any], Any] | None = None
    ) -> dict[str, Any]:
        assert prompt_id is not None, "host code always asks for one prompt"
        if prompt_id not in self.history:
            return {}
        entry = self.history[prompt_id]
        return {prompt_id: map_function(entry) if map_function else entry}

    def delete_queue_item(self, function: Callable[[tuple[Any, ...]], bool]) -> bool:
        for index, item in enumerate(self.queued):
            if function(item):
                self.queued.pop(index)
                return True
        return False

    def delete_history_item(self, prompt_id: str) -> None:
        self.history_deletes.append(prompt_id)
        self.history.pop(prompt_id, None)

    # test helpers: move a prompt along as ComfyUI's worker would
    def start(self, prompt_id: str) -> None:
        item = next(item for item in self.queued if item[1] == prompt_id)
        self.queued.remove(item)
        self.running.append(item)

    def finish(self, prompt_id: str, status: dict[str, Any] | None) -> None:
        item = next(item for item in self.running if item[1] == prompt_id)
        self.running.remove(item)
        self.history[prompt_id] = {"prompt": item, "outputs": {}, "status": status}


class FakeServer:
    """The attributes of PromptServer.instance that ``host`` uses."""

    def __init__(self) -> None:
        self.number = 0
        self.loop = FakeLoop()
        self.prompt_queue = FakePromptQueue()
        self.routes = web.RouteTableDef()
        self.app = web.Application()
        self.sent: list[tuple[str, Any]] = []
        self.broadcast_sizes: list[int] = []  # queue size each `status` broadcast reported

    def queue_updated(self) -> None:
        running, queued = self.prompt_queue.get_current_queue_volatile()
        self.broadcast_sizes.append(len(running) + len(queued))

    def send_sync(self, event: str, payload: Any) -> None:
        self.sent.append((event, payload))


def combo(options: list[Any], **extra: Any) -> tuple[str, dict[str, Any]]:
    """A V3 combo declaration as ``INPUT_TYPES`` returns it."""
    return ("COMBO", {"options": options, **extra})


def node_class(
    required: dict[str, Any], *, output: bool = False, returns: tuple[str, ...] = ("IMAGE",)
) -> type:
    """A node class with ``INPUT_TYPES`` (all ComfyUI's validation reads of it)."""

    class FakeNode:
        OUTPUT_NODE = output
        RETURN_TYPES = returns

        @classmethod
        def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
            return {"required": dict(required)}

    return FakeNode


class FakeHostValidation:
    """ComfyUI's ``validate_prompt``/``validate_inputs`` rules that matter here, with or without the
    V3 combo check newer hosts have. Like ComfyUI it checks only what the outputs depend on, stops at
    the first unknown class, and checks V1 (plain list) combos."""

    def __init__(self, class_mappings: dict[str, type], *, checks_v3_combos: bool) -> None:
        self.class_mappings = class_mappings
        self.checks_v3_combos = checks_v3_combos
        self.prompts_validated: list[dict[str, Any]] = []
        self.nodes_probed: list[tuple[str, dict[str, Any]]] = []

    async def validate_prompt(
        self, prompt_id: str, prompt: dict[str, Any], outputs: list[str]
    ) -> tuple[bool, Any, list[str], dict[str, Any]]:
        self.prompts_validated.append(copy.deepcopy(prompt))
        for node_id, node in prompt.items():
            if node["class_type"] not in self.class_mappings:
                error = {"type": "invalid_prompt", "message": "does not exist", "details": f"#{node_id}"}
                return False, error, [], {}
        node_errors: dict[str, Any] = {}
        pending, seen = list(outputs), set()
        while pending:
            node_id = pending.pop()
            if node_id in seen:
                continue
            seen.add(node_id)
            errors = self._node_errors(prompt, node_id)
            if errors:
                node_errors[node_id] = {
                    "errors": errors,
                    "dependent_outputs": list(outputs),
                    "class_type": prompt[node_id]["class_type"],
                }
            pending.extend(v[0] for v in prompt[node_id]["inputs"].values() if isinstance(v, list))
        if node_errors:
            error = {"type": "prompt_outputs_failed_validation", "message": "failed", "details": ""}
            return False, error, [], node_errors
        return True, None, list(outputs), {}

    async def validate_inputs(
        self, prompt_id: str, prompt: dict[str, Any], node_id: str, validated: dict[str, Any]
    ) -> tuple[bool, list[dict[str, Any]], str]:
        self.nodes_probed.append((node_id, copy.deepcopy(prompt[node_id])))
        errors = self._node_errors(prompt, node_id)
        return not errors, errors, node_id

    def _node_errors(self, prompt: dict[str, Any], node_id: str) -> list[dict[str, Any]]:
        node = prompt[node_id]
        declared = self.class_mappings[node["class_type"]].INPUT_TYPES()["required"]
        errors = []
        for name, info in declared.items():
            value = node["inputs"].get(name)
            if isinstance(value, list):
                continue
            if isinstance(info[0], list):
                options = info[0]
            elif info[0] == "COMBO" and self.checks_v3_combos:
                options = info[1].get("options", [])
            else:
                continue
            if value not in options:
                errors.append({
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": f"{name}: {value!r}",
                    "extra_info": {"input_name": name, "received_value": value},
                })
        return errors


class FakeNodeReplaceManager:
    """``node_replace_manager``: rewrites nodes of an unknown old class onto a registered new one."""

    def __init__(self, class_mappings: dict[str, type], renames: dict[str, str]) -> None:
        self.class_mappings = class_mappings
        self.renames = renames
        self.calls = 0

    def apply_replacements(self, prompt: dict[str, Any]) -> None:
        self.calls += 1
        for node_id, node in list(prompt.items()):
            old = node["class_type"]
            if old not in self.class_mappings and self.renames.get(old) in self.class_mappings:
                prompt[node_id] = {**node, "class_type": self.renames[old], "inputs": dict(node["inputs"])}
