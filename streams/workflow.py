"""A stream's workflow: finding its live nodes, mapping comfystream's nodes, building per-frame prompts.

comfystream compatibility (decision): workflows written for comfystream use ``LoadTensor`` (input) and
``SaveTensor`` (output). We do **not** register nodes under those names, because a ComfyUI that also has
comfystream installed would then have two classes fighting over one name. Instead the stream's own copy
of the workflow is rewritten at start: ``LoadTensor`` -> ``TrickleInput`` (its ``timeout_seconds`` is
kept) and ``SaveTensor`` -> ``TrickleOutput``. Both pairs have the same sockets (IMAGE out at index 0,
``images`` in), so links stay valid. The user's workflow object is never modified.

Per frame, only the ``TrickleOutput`` node (and what it depends on) is executed; other output nodes
(``PreviewImage``, ``SaveImage``) in a stream's workflow are kept for the UI but never run per frame,
so temp/ and output/ do not fill up with one file per video frame.

Cache keep-alive: every node id of a stream is namespaced with the stream's prefix, a frame's prompt
holds only the live output's ancestors, and carries other work's cache-relevant nodes inert: see
``streams.keepalive`` for what and why.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import WorkflowInvalid, node_error

INPUT_CLASS = "TrickleInput"
OUTPUT_CLASS = "TrickleOutput"
# output nodes that run in every frame's prompt besides the live output (text to the data channel)
SIDE_OUTPUT_CLASSES = ("TrickleTextOutput",)
# comfystream class -> our class (see the module docstring)
COMPAT_CLASSES = {"LoadTensor": INPUT_CLASS, "SaveTensor": OUTPUT_CLASS}

STREAM_INPUT = "stream_id"
TICKET_INPUT = "frame_ticket"


def is_link(value: Any) -> bool:
    """ComfyUI's link form: ``[source node id, output index]``."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int


def ancestors(nodes: dict[str, Any], node_ids: Iterable[str]) -> set[str]:
    """``node_ids`` and every node they depend on through links (ids missing from ``nodes`` are skipped)."""
    seen: set[str] = set()
    pending = list(node_ids)
    while pending:
        current = pending.pop()
        if current in seen or current not in nodes:
            continue
        seen.add(current)
        pending.extend(value[0] for value in nodes[current].get("inputs", {}).values() if is_link(value))
    return seen


def frame_dependent(nodes: dict[str, Any], input_ids: Iterable[str]) -> set[str]:
    """The live inputs and every node downstream of one (these run every frame)."""
    consumers: dict[str, list[str]] = {}
    for node_id, node in nodes.items():
        for value in node.get("inputs", {}).values():
            if is_link(value):
                consumers.setdefault(value[0], []).append(node_id)
    seen: set[str] = set()
    pending = [node_id for node_id in input_ids if node_id in nodes]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        pending.extend(consumers.get(current, ()))
    return seen


def needed_nodes(nodes: dict[str, Any], output_ids: Iterable[str]) -> dict[str, Any]:
    """The nodes a frame's prompt must contain: the live outputs and their ancestors."""
    keep = ancestors(nodes, output_ids)
    return {node_id: node for node_id, node in nodes.items() if node_id in keep}


def frame_independent(
    nodes: dict[str, Any], input_ids: Iterable[str], output_ids: Iterable[str]
) -> dict[str, Any]:
    """The outputs' ancestors that no live input reaches: what a stream computes once, not per frame."""
    keep = ancestors(nodes, output_ids) - frame_dependent(nodes, input_ids)
    return {node_id: node for node_id, node in nodes.items() if node_id in keep}


@dataclass(frozen=True)
class LiveWorkflow:
    """A workflow with its live nodes found; ``nodes`` uses the original ids and our class names."""

    nodes: dict[str, Any]
    input_ids: tuple[str, ...]
    output_id: str
    mapped: dict[str, str]  # node id -> original class_type, for nodes rewritten from comfystream's
    side_output_ids: tuple[str, ...] = ()  # SIDE_OUTPUT_CLASSES nodes: bound to the stream, executed too

    @property
    def output_ids(self) -> list[str]:
        return [self.output_id, *self.side_output_ids]


def prepare_workflow(workflow: dict[str, Any]) -> LiveWorkflow:
    """Copy the workflow, map comfystream's nodes and find the live input/output nodes.

    Raises ``WorkflowInvalid`` (with ComfyUI-shaped ``node_errors``) for a workflow without a live input,
    without a live output, or with more than one live output.
    """
    if not isinstance(workflow, dict) or not workflow:
        raise WorkflowInvalid("The workflow must be a non-empty API-format object (node id -> node).")
    nodes: dict[str, Any] = {}
    mapped: dict[str, str] = {}
    for node_id, node in workflow.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise WorkflowInvalid(
                f"Node {node_id!r} is not an object with a class_type.",
                node_error(str(node_id), "", "invalid_node", "node has no class_type"),
            )
        node = copy.deepcopy(node)
        node.setdefault("inputs", {})
        original = node["class_type"]
        if original in COMPAT_CLASSES:
            node["class_type"] = COMPAT_CLASSES[original]
            mapped[str(node_id)] = original
        nodes[str(node_id)] = node

    input_ids = tuple(nid for nid, node in nodes.items() if node["class_type"] == INPUT_CLASS)
    output_ids = [nid for nid, node in nodes.items() if node["class_type"] == OUTPUT_CLASS]
    if not input_ids:
        raise WorkflowInvalid(
            "The workflow has no live input node: add a TrickleInput (or comfystream's LoadTensor).",
            {},
        )
    if not output_ids:
        raise WorkflowInvalid(
            "The workflow has no live output node: add a TrickleOutput (or comfystream's SaveTensor).",
            {},
        )
    if len(output_ids) > 1:
        errors: dict[str, Any] = {}
        for nid in output_ids[1:]:
            errors.update(
                node_error(
                    nid,
                    mapped.get(nid, OUTPUT_CLASS),
                    "too_many_outputs",
                    "A stream workflow has exactly one live output node",
                    f"Node ID '#{nid}' is a second live output (the first is '#{output_ids[0]}')",
                )
            )
        raise WorkflowInvalid("The workflow has more than one live output node.", errors)
    side_ids = tuple(nid for nid, node in nodes.items() if node["class_type"] in SIDE_OUTPUT_CLASSES)
    return LiveWorkflow(
        nodes=nodes, input_ids=input_ids, output_id=output_ids[0], mapped=mapped, side_output_ids=side_ids
    )


def namespaced(nodes: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The nodes with every id (and every link to one) prefixed, so streams never share node ids."""
    renamed: dict[str, Any] = {}
    for node_id, node in nodes.items():
        inputs = {
            name: [prefix + value[0], value[1]] if is_link(value) else value
            for name, value in node["inputs"].items()
        }
        renamed[prefix + node_id] = {**node, "inputs": inputs}
    return renamed


class PromptBuilder:
    """Builds one frame's prompt from a stream's validated workflow (cheap: shallow copies)."""

    def __init__(self, live: LiveWorkflow, prefix: str, stream_id: str) -> None:
        self.prefix = prefix
        self.stream_id = stream_id
        self.output_id = prefix + live.output_id
        self.output_ids = [prefix + nid for nid in live.output_ids]
        # only what the live outputs need: other output nodes never run per frame (module docstring)
        self._template = needed_nodes(namespaced(live.nodes, prefix), self.output_ids)
        input_ids = [prefix + nid for nid in live.input_ids if prefix + nid in self._template]
        # side outputs take the frame's ticket too: an input that changes every frame keeps ComfyUI from
        # serving them from its cache (their other inputs are often constant)
        self._live_ids = [*input_ids, *self.output_ids]
        for live_id in self._live_ids:
            self._template[live_id]["inputs"][STREAM_INPUT] = stream_id
            self._template[live_id]["inputs"][TICKET_INPUT] = 0
        # separate objects from the template: ComfyUI writes fingerprints into a prompt's node objects
        independent = frame_independent(self._template, input_ids, self.output_ids)
        self._frame_independent = {node_id: copy.deepcopy(node) for node_id, node in independent.items()}

    def frame_independent_nodes(self) -> dict[str, Any]:
        """This stream's nodes that do not change per frame, for other prompts (never executed there,
        see ``streams.keepalive``); the same object every call."""
        return self._frame_independent

    @property
    def node_count(self) -> int:
        """How many nodes each frame's prompt holds of this stream."""
        return len(self._template)

    def build(self, ticket: int, inert: dict[str, Any] | None = None) -> dict[str, Any]:
        """The prompt for one frame: this stream's nodes bound to ``ticket``, plus ``inert`` nodes."""
        # The inert nodes are the keep-alive's copies, used as they are: ComfyUI writes each node's
        # fingerprint (``is_changed``) into it once and reuses it (``streams.keepalive``). This stream's
        # own nodes are copied per frame, so their fingerprints are taken afresh, as for any prompt.
        prompt: dict[str, Any] = dict(inert) if inert else {}
        for node_id, node in self._template.items():
            prompt[node_id] = {**node, "inputs": dict(node["inputs"])}
        for live_id in self._live_ids:
            prompt[live_id]["inputs"][TICKET_INPUT] = ticket
        return prompt

    def original_id(self, node_id: str | None) -> str | None:
        """Map a namespaced node id (from an execution error) back to the user's id."""
        if node_id is not None and node_id.startswith(self.prefix):
            return node_id[len(self.prefix) :]
        return node_id
