"""ComfyUI's on-prompt handler for the cache keep-alive (see ``streams.keepalive``).

``PromptServer.add_on_prompt_handler`` is ComfyUI's own hook on every ``POST /prompt`` body before it is
validated and queued (the UI's Run button). Ours does two things there:
- adds every live stream's frame-independent nodes to the user's prompt, inert (they are not outputs, so
  ComfyUI neither validates nor executes them), so the classic cache keeps a stream's loaded models
  while the user's prompt runs;
- remembers the user's nodes, so each stream frame's prompt carries them inert and the user's second
  identical Run finds its results still cached.

Only nodes ComfyUI knows are remembered (a frame's prompt skips validation, and an unknown class would
fail it), and no output node of a stream is added (ComfyUI would run it as one of the user's outputs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..streams.keepalive import CacheKeepAlive
from ..streams.workflow import COMPAT_CLASSES, INPUT_CLASS, OUTPUT_CLASS

logger = logging.getLogger(__name__)

OnPromptHandler = Callable[[dict[str, Any]], dict[str, Any]]


def keepalive_handler(keepalive: CacheKeepAlive, node_classes: Mapping[str, Any]) -> OnPromptHandler:
    """The handler for ``server.add_on_prompt_handler``; ``node_classes`` is ``nodes.NODE_CLASS_MAPPINGS``."""

    def on_prompt(json_data: dict[str, Any]) -> dict[str, Any]:
        prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
        if not isinstance(prompt, dict) or not prompt:
            return json_data
        keepalive.remember_user_prompt(_known_nodes(prompt, node_classes))
        # copies: ComfyUI writes each node's fingerprint into the prompt's node objects
        carried = {
            node_id: dict(node)
            for node_id, node in keepalive.for_user_prompt(prompt).items()
            if not _is_output_node(node_classes.get(node.get("class_type")))
        }
        if carried:
            json_data["prompt"] = {**carried, **prompt}
        return json_data

    return on_prompt


def install_keepalive_handler(
    server: Any, keepalive: CacheKeepAlive, node_classes: Mapping[str, Any]
) -> None:
    """Register the handler on ``server`` (``PromptServer.instance``); hosts without the hook are skipped."""
    add_handler = getattr(server, "add_on_prompt_handler", None)
    if add_handler is None:
        logger.warning("comfy-trickle: no on-prompt handlers here; user prompts may evict streams' cache")
        return
    add_handler(keepalive_handler(keepalive, node_classes))


# a user's live nodes (Run on a stream workflow) change every time: carrying them would only add a new
# cache key per frame to ComfyUI's LRU / RAM-pressure bookkeeping
_NEVER_CARRIED = {INPUT_CLASS, OUTPUT_CLASS, *COMPAT_CLASSES}


def _known_nodes(prompt: dict[str, Any], node_classes: Mapping[str, Any]) -> dict[str, Any]:
    known: dict[str, Any] = {}
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or node.get("class_type") not in node_classes:
            continue
        if node["class_type"] in _NEVER_CARRIED:
            continue
        if not isinstance(node.get("inputs", {}), dict):
            continue
        known[str(node_id)] = {"class_type": node["class_type"], "inputs": dict(node.get("inputs", {}))}
    return known


def _is_output_node(node_class: Any) -> bool:
    return bool(getattr(node_class, "OUTPUT_NODE", False))
