"""host.validation against a fake ComfyUI: which workflows /stream/start refuses, and with what
node_errors, on a host with and without node replacements and its own V3 combo check. The real
ComfyUI 0.3.75 behaviour is checked in test_routes_comfyui.py."""

from __future__ import annotations

import sys
import types

import pytest
from comfy_trickle.host.validation import (
    PROBE_COMBO_VALUE,
    HostValidation,
    WorkflowValidator,
    combo_value_errors,
    host_validation,
)
from host_fakes import FakeHostValidation, FakeNodeReplaceManager, combo, node_class

BLEND_MODES = ["normal", "multiply", "screen"]


@pytest.fixture
def classes() -> dict[str, type]:
    return {
        "Source": node_class({"color": (["red", "green"],)}),  # V1 combo: the host checks it
        "Blend": node_class({"image": ("IMAGE",), "blend_mode": combo(BLEND_MODES)}),  # V3 combo
        "Sink": node_class({"images": ("IMAGE",)}, output=True),
    }


def workflow(blend_mode: str = "normal", *, source: str = "Source") -> dict:
    return {
        "1": {"class_type": source, "inputs": {"color": "red"}},
        "2": {"class_type": "Blend", "inputs": {"image": ["1", 0], "blend_mode": blend_mode}},
        "3": {"class_type": "Sink", "inputs": {"images": ["2", 0]}},
    }


def validator_for(host: FakeHostValidation, replacer: FakeNodeReplaceManager | None = None):
    return WorkflowValidator(
        HostValidation(
            class_mappings=host.class_mappings,
            validate_prompt=host.validate_prompt,
            validate_inputs=host.validate_inputs,
            apply_replacements=replacer.apply_replacements if replacer else None,
        )
    )


async def test_a_valid_workflow_passes_and_comes_back_as_the_validated_copy(classes):
    host = FakeHostValidation(classes, checks_v3_combos=False)
    original = workflow()
    result = await validator_for(host).validate(original, ["3"])
    assert result.ok and result.node_errors == {} and result.outputs == ["3"]
    assert result.workflow == original and result.workflow is not original
    assert host.nodes_probed == []  # nothing to probe when our check finds nothing


async def test_every_unknown_node_type_is_named_before_the_host_validates(classes):
    host = FakeHostValidation(classes, checks_v3_combos=False)
    flow = workflow(source="NoSuchLoader")
    flow["4"] = {"class_type": "NoSuchFilter", "inputs": {}}
    result = await validator_for(host).validate(flow, ["3"])
    assert not result.ok
    assert result.error["message"] == "Unknown node types"
    assert {node_id: entry["class_type"] for node_id, entry in result.node_errors.items()} == {
        "1": "NoSuchLoader",
        "4": "NoSuchFilter",
    }
    assert "NoSuchFilter does not exist" in result.node_errors["4"]["errors"][0]["message"]
    assert host.prompts_validated == []


async def test_an_old_host_lets_a_bad_v3_combo_through_and_we_refuse_it(classes):
    host = FakeHostValidation(classes, checks_v3_combos=False)
    validator = validator_for(host)
    result = await validator.validate(workflow("sideways"), ["3"])
    assert not result.ok
    assert result.error["type"] == "prompt_outputs_failed_validation"
    entry = result.node_errors["2"]
    assert entry["class_type"] == "Blend" and entry["dependent_outputs"] == ["3"]
    (error,) = entry["errors"]
    assert error["type"] == "value_not_in_list"
    assert error["details"] == f"blend_mode: 'sideways' not in {BLEND_MODES}"
    assert error["extra_info"]["input_name"] == "blend_mode"
    assert error["extra_info"]["received_value"] == "sideways"
    # The probe asked the host once with a value no dropdown has, and learnt it does not check combos.
    assert [(node_id, node["inputs"]["blend_mode"]) for node_id, node in host.nodes_probed] == [
        ("2", PROBE_COMBO_VALUE)
    ]
    assert not validator.host_checks_combos


async def test_a_host_that_checks_v3_combos_answers_for_itself(classes):
    host = FakeHostValidation(classes, checks_v3_combos=True)
    validator = validator_for(host)
    result = await validator.validate(workflow("sideways"), ["3"])
    assert not result.ok
    assert result.node_errors["2"]["errors"][0]["details"] == "blend_mode: 'sideways'"  # the host's words
    assert host.nodes_probed == []


async def test_where_a_combo_checking_host_accepts_what_we_would_refuse_its_verdict_stands(classes):
    # A node no output depends on is never validated by ComfyUI (nor run): /prompt accepts it.
    host = FakeHostValidation(classes, checks_v3_combos=True)
    validator = validator_for(host)
    flow = workflow()
    flow["9"] = {"class_type": "Blend", "inputs": {"image": ["1", 0], "blend_mode": "sideways"}}
    assert (await validator.validate(flow, ["3"])).ok
    assert validator.host_checks_combos
    assert len(host.nodes_probed) == 1
    # Learnt once: later workflows are left to the host without another probe.
    assert (await validator.validate(flow, ["3"])).ok
    assert len(host.nodes_probed) == 1


async def test_the_same_dangling_bad_combo_is_refused_on_an_old_host(classes):
    host = FakeHostValidation(classes, checks_v3_combos=False)
    flow = workflow()
    flow["9"] = {"class_type": "Blend", "inputs": {"image": ["1", 0], "blend_mode": "sideways"}}
    result = await validator_for(host).validate(flow, ["3"])
    assert not result.ok and list(result.node_errors) == ["9"]


async def test_without_validate_inputs_or_when_the_probe_fails_our_check_stands(classes):
    host = FakeHostValidation(classes, checks_v3_combos=True)
    no_probe = WorkflowValidator(HostValidation(host.class_mappings, host.validate_prompt))
    flow = workflow()
    flow["9"] = {"class_type": "Blend", "inputs": {"image": ["1", 0], "blend_mode": "sideways"}}
    assert not (await no_probe.validate(flow, ["3"])).ok

    async def choking_validate_inputs(*_args):
        raise ValueError("a node's own validate_inputs did not like the probe")

    choking = WorkflowValidator(
        HostValidation(host.class_mappings, host.validate_prompt, validate_inputs=choking_validate_inputs)
    )
    assert not (await choking.validate(flow, ["3"])).ok
    assert not choking.host_checks_combos


async def test_node_replacements_are_applied_before_validating_when_the_host_has_them(classes):
    host = FakeHostValidation(classes, checks_v3_combos=False)
    replacer = FakeNodeReplaceManager(classes, {"OldSource": "Source"})
    original = workflow(source="OldSource")
    result = await validator_for(host, replacer).validate(original, ["3"])
    assert result.ok
    assert result.workflow["1"]["class_type"] == "Source"  # per-frame prompts use the replacement
    assert host.prompts_validated[0]["1"]["class_type"] == "Source"
    assert original["1"]["class_type"] == "OldSource"  # the caller's workflow is left alone
    assert replacer.calls == 1


async def test_without_node_replacements_an_old_class_is_unknown(classes):
    host = FakeHostValidation(classes, checks_v3_combos=False)
    result = await validator_for(host).validate(workflow(source="OldSource"), ["3"])
    assert not result.ok and result.node_errors["1"]["class_type"] == "OldSource"


def test_combo_check_skips_links_multi_select_and_remote_options_and_lists_all_bad_inputs():
    classes = {
        "Picky": node_class({
            "mode": combo(["a", "b"]),
            "shape": combo(["round", "square"]),
            "linked": combo(["x"]),
            "tags": combo(["p", "q"], multi_select=True),
            "remote": combo([]),
        })
    }
    prompt = {
        "5": {
            "class_type": "Picky",
            "inputs": {"mode": "c", "shape": "oval", "linked": ["4", 0], "tags": "z", "remote": "any"},
        }
    }
    errors = combo_value_errors(prompt, classes, ["7"])
    assert [e["extra_info"]["input_name"] for e in errors["5"]["errors"]] == ["mode", "shape"]
    long_options = [f"model_{i}.safetensors" for i in range(30)]
    classes["Loader"] = node_class({"ckpt": combo(long_options)})
    errors = combo_value_errors({"6": {"class_type": "Loader", "inputs": {"ckpt": "gone"}}}, classes, [])
    (error,) = errors["6"]["errors"]
    assert error["details"] == "ckpt: 'gone' not in (list of length 30)"
    assert error["extra_info"]["input_config"] is None


def test_host_validation_detects_node_replacements_by_the_servers_manager(monkeypatch):
    async def validate_prompt(*_args):
        return True, None, [], {}

    mappings = {"Sink": node_class({}, output=True)}
    monkeypatch.setitem(sys.modules, "execution", types.SimpleNamespace(validate_prompt=validate_prompt))
    monkeypatch.setitem(sys.modules, "nodes", types.SimpleNamespace(NODE_CLASS_MAPPINGS=mappings))
    manager = FakeNodeReplaceManager(mappings, {})

    newer = host_validation(types.SimpleNamespace(node_replace_manager=manager))
    assert newer.apply_replacements == manager.apply_replacements
    assert newer.class_mappings is mappings and newer.validate_prompt is validate_prompt
    assert newer.validate_inputs is None  # this fake execution module has none

    older = host_validation(types.SimpleNamespace())
    assert older.apply_replacements is None


async def test_every_node_of_a_dependency_cycle_is_named(classes):
    host = FakeHostValidation(classes, checks_v3_combos=False)
    cyclic = {
        "1": {"class_type": "Source", "inputs": {"color": "red"}},
        "2": {"class_type": "Blend", "inputs": {"image": ["4", 0], "blend_mode": "normal"}},
        "3": {"class_type": "Sink", "inputs": {"images": ["2", 0]}},
        "4": {"class_type": "Blend", "inputs": {"image": ["2", 0], "blend_mode": "normal"}},
        "5": {"class_type": "Blend", "inputs": {"image": ["5", 0], "blend_mode": "normal"}},  # itself
        "6": {"class_type": "Sink", "inputs": {"images": ["5", 0]}},
    }
    result = await validator_for(host).validate(cyclic, ["3", "6"])
    assert not result.ok and result.error["message"] == "Dependency cycle"
    assert sorted(result.node_errors) == ["2", "4", "5"]  # not the sinks downstream of the cycles
    details = result.node_errors["2"]["errors"][0]["details"]
    assert details == "Node '#2' is part of a dependency cycle: #2, #4"
    assert result.node_errors["5"]["errors"][0]["type"] == "dependency_cycle"
    assert result.node_errors["4"]["class_type"] == "Blend"
    assert host.prompts_validated == []  # refused before the host (which would name no node)


async def test_a_cycle_the_outputs_do_not_depend_on_is_left_to_the_host_like_post_prompt(classes):
    host = FakeHostValidation(classes, checks_v3_combos=False)
    unused_cycle = {
        **workflow(),
        "8": {"class_type": "Blend", "inputs": {"image": ["9", 0], "blend_mode": "normal"}},
        "9": {"class_type": "Blend", "inputs": {"image": ["8", 0], "blend_mode": "normal"}},
    }
    result = await validator_for(host).validate(unused_cycle, ["3"])
    assert result.ok and result.node_errors == {}


def test_a_long_chain_ending_in_a_cycle_needs_no_recursion():
    from comfy_trickle.host.cycles import cycle_node_errors

    chain = {str(i): {"class_type": "Blend", "inputs": {"image": [str(i + 1), 0]}} for i in range(20_000)}
    chain["20000"] = {"class_type": "Blend", "inputs": {"image": ["19999", 0]}}
    assert sorted(cycle_node_errors(chain, ["0"])) == ["19999", "20000"]
