"""Validate a stream's workflow the way ComfyUI's own ``POST /prompt`` does, and a little more.

``/stream/start`` must accept exactly what ``/prompt`` accepts, on whichever ComfyUI runs us. So the
host's own pieces are used wherever it has them, found by feature detection (never a version number):

- **Node replacements.** A host with ``PromptServer.instance.node_replace_manager.apply_replacements``
  rewrites nodes of a removed type onto their registered replacement before validating, in place; we
  call it on our copy first, exactly where ``/prompt`` does.
- **Unknown node types.** ComfyUI stops at the first unknown ``class_type`` (naming none in
  ``node_errors``); we name them all, so a user sees every missing pack at once.
- **V3 combo values.** Older hosts (0.3.75) check a dropdown's value only for V1 nodes (``INPUT_TYPES``
  declares a plain list); V3 nodes declare ``("COMBO", {"options": [...]})`` and a bad value would start
  the stream and fail on the first frame, so we check those ourselves after the host accepted the
  workflow. Newer hosts check them in ``validate_prompt``. See ``WorkflowValidator._host_rejects_combo``
  for how that is detected.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..streams.errors import merge_node_errors, node_error
from ..streams.executor import ValidationResult

logger = logging.getLogger(__name__)

# execution.validate_prompt(prompt_id, prompt, partial_execution_list) -> (ok, error, outputs, node_errors)
ValidatePrompt = Callable[[str, dict[str, Any], list[str]], Awaitable[tuple[Any, ...]]]
# execution.validate_inputs(prompt_id, prompt, node_id, validated) -> (ok, errors, node_id)
ValidateInputs = Callable[[str, dict[str, Any], str, dict[str, Any]], Awaitable[tuple[Any, ...]]]
# node_replace_manager.apply_replacements(prompt): rewrites the prompt in place
ApplyReplacements = Callable[[dict[str, Any]], Any]

# A combo value no real dropdown offers; used only in the probe prompt.
PROBE_COMBO_VALUE = "\x00comfy-trickle: not an option\x00"


@dataclass(frozen=True)
class HostValidation:
    """The few pieces of ComfyUI validation uses; ``None`` where the host lacks the feature."""

    class_mappings: Mapping[str, Any]  # nodes.NODE_CLASS_MAPPINGS (the live dict, filled as packs load)
    validate_prompt: ValidatePrompt
    validate_inputs: ValidateInputs | None = None
    apply_replacements: ApplyReplacements | None = None


def host_validation(server: Any) -> HostValidation:
    """The running ComfyUI's validation pieces, each present only where the host has it."""
    import execution

    import nodes

    manager = getattr(server, "node_replace_manager", None)
    apply_replacements = getattr(manager, "apply_replacements", None)
    validate_inputs = getattr(execution, "validate_inputs", None)
    return HostValidation(
        class_mappings=nodes.NODE_CLASS_MAPPINGS,
        validate_prompt=execution.validate_prompt,
        validate_inputs=validate_inputs if callable(validate_inputs) else None,
        apply_replacements=apply_replacements if callable(apply_replacements) else None,
    )


def unknown_node_errors(prompt: dict[str, Any], class_mappings: Mapping[str, Any]) -> dict[str, Any]:
    """``node_errors`` naming every node whose ``class_type`` the host does not know."""
    errors: dict[str, Any] = {}
    for node_id, node in prompt.items():
        class_type = node["class_type"]
        if class_type not in class_mappings:
            errors.update(
                node_error(
                    node_id,
                    class_type,
                    "invalid_prompt",
                    f"Node type {class_type} does not exist (is its custom node pack installed?)",
                    f"Node ID '#{node_id}'",
                )
            )
    return errors


def combo_value_errors(
    prompt: dict[str, Any], class_mappings: Mapping[str, Any], output_node_ids: list[str]
) -> dict[str, Any]:
    """``node_errors`` (ComfyUI's shape, ``value_not_in_list``) for V3 dropdown values not offered.

    Linked inputs (``[node_id, slot]`` lists), multi-select and remote (empty) option lists are skipped.
    """
    entries: list[dict[str, Any]] = []
    for node_id, node in prompt.items():
        class_def = class_mappings.get(node.get("class_type"))
        if class_def is None:
            continue
        try:
            declared = class_def.INPUT_TYPES()
        except Exception:  # a node whose schema cannot be read is left to ComfyUI's own checks
            logger.debug("comfy-trickle: INPUT_TYPES of %s failed", node.get("class_type"), exc_info=True)
            continue
        for category in ("required", "optional"):
            for input_name, info in (declared.get(category) or {}).items():
                if input_name not in node.get("inputs", {}):
                    continue
                options = _v3_combo_options(info)
                value = node["inputs"][input_name]
                if options is None or isinstance(value, list) or value in options:
                    continue
                listed = str(options) if len(options) <= 20 else f"(list of length {len(options)})"
                entries.append(node_error(
                    node_id,
                    node["class_type"],
                    "value_not_in_list",
                    "Value not in list",
                    f"{input_name}: {value!r} not in {listed}",
                    input_name,
                    # ComfyUI's own value_not_in_list also says what was declared and what it got
                    extra_info={
                        "input_config": list(info) if len(options) <= 20 else None,
                        "received_value": value,
                    },
                    dependent_outputs=output_node_ids,
                ))
    return merge_node_errors(*entries)


def _v3_combo_options(info: Any) -> list[Any] | None:
    """The options of a single-select V3 combo declaration with a static list, else None."""
    if not isinstance(info, list | tuple) or not info or info[0] != "COMBO":
        return None
    extra = info[1] if len(info) > 1 and isinstance(info[1], dict) else {}
    options = extra.get("options")
    if not isinstance(options, list) or not options or extra.get("multi_select"):
        return None
    return options


class WorkflowValidator:
    """Validates workflows against one host; remembers what it learnt about the host's combo check."""

    def __init__(self, host: HostValidation) -> None:
        self._host = host
        self._host_checks_combos = False

    @property
    def host_checks_combos(self) -> bool:
        """True once a probe showed the host's validation rejects bad V3 combo values itself."""
        return self._host_checks_combos

    async def validate(self, workflow: dict[str, Any], output_node_ids: list[str]) -> ValidationResult:
        """Validate a copy of ``workflow`` (checking ``output_node_ids`` and what they depend on)."""
        prompt = copy.deepcopy(workflow)
        outputs = list(output_node_ids)
        if self._host.apply_replacements is not None:
            self._host.apply_replacements(prompt)  # before anything else, as POST /prompt does
        unknown = unknown_node_errors(prompt, self._host.class_mappings)
        if unknown:
            error = {"type": "invalid_prompt", "message": "Unknown node types", "details": ""}
            return ValidationResult(False, error, [], unknown, prompt)
        ok, error, checked_outputs, node_errors = await self._host.validate_prompt(
            str(uuid.uuid4()), prompt, outputs
        )
        if ok and not node_errors and not self._host_checks_combos:
            combo_errors = combo_value_errors(prompt, self._host.class_mappings, outputs)
            if combo_errors and not await self._host_rejects_combo(prompt, combo_errors):
                error = {
                    "type": "prompt_outputs_failed_validation",
                    "message": "Prompt outputs failed validation",
                    "details": "",
                    "extra_info": {},
                }
                return ValidationResult(False, error, list(checked_outputs), combo_errors, prompt)
        return ValidationResult(bool(ok), error, list(checked_outputs), dict(node_errors or {}), prompt)

    async def _host_rejects_combo(self, prompt: dict[str, Any], combo_errors: dict[str, Any]) -> bool:
        """Feature probe: does the host's own validation check V3 combo values?

        Asked only when the host accepted a workflow our check refuses (so never on the per-frame path,
        and on a host that checks combos only for values its rules allow, e.g. remote or multi-select
        options). The probe validates one flagged node with the host's ``validate_inputs``, its combo set
        to a value no dropdown offers: a host that checks V3 combos answers ``value_not_in_list`` for
        that input. Then the host's verdict (accepted) stands, and the answer is kept so later workflows
        skip our check. Asking the host how it behaves tracks exactly what ``/prompt`` accepts, where a
        version number or a function's presence would not (``validate_inputs`` exists in both). A
        "no" is not kept: the probed input may be one the host leaves to the node's own
        ``validate_inputs``, so the next refused workflow asks again (one node, a few ms, on a 4xx path).
        """
        if self._host.validate_inputs is None:
            return False
        node_id, entry = next(iter(combo_errors.items()))
        input_name = entry["errors"][0]["extra_info"]["input_name"]
        probe = copy.deepcopy(prompt)
        probe[node_id]["inputs"][input_name] = PROBE_COMBO_VALUE
        try:
            _ok, errors, *_ = await self._host.validate_inputs(str(uuid.uuid4()), probe, node_id, {})
        except Exception:  # a node's own validation may choke on the probe value: no answer, keep ours
            logger.debug("comfy-trickle: combo probe on node %s failed", node_id, exc_info=True)
            return False
        rejects = any(
            error.get("type") == "value_not_in_list"
            and (error.get("extra_info") or {}).get("input_name") == input_name
            for error in errors or []
            if isinstance(error, dict)
        )
        if rejects:
            self._host_checks_combos = True
            logger.info("comfy-trickle: ComfyUI checks V3 combo values itself; using its check only")
        return rejects
