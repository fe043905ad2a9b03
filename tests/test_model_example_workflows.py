"""The model example workflows (example_workflows/models/, issue 15 §4): checked against the node
definitions of a real ComfyUI (every node exists, every input is known and typed right, every link
connects matching types, every choice is one ComfyUI offers except the model files), and, with the
models absent, ``/stream/start`` answers 400 naming the missing file, as ComfyUI does."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

MODELS_DIR = Path(__file__).resolve().parents[1] / "example_workflows" / "models"
EXAMPLES = sorted(MODELS_DIR.glob("*.json"))
# the inputs naming model files: what users download (their lists are empty here)
MODEL_FILE_INPUTS = {"ckpt_name", "lora_name", "control_net_name", "vae_name"}
LIVE_PLUMBING = {"stream_id", "frame_ticket"}  # filled in by the stream
MISSING_FILES = {
    "sd_turbo_taesd_img2img.json": "sd_turbo.safetensors",
    "lcm_controlnet_canny.json": "v1-5-pruned-emaonly-fp16.safetensors",
}


def choices(spec: list) -> list | None:
    kind = spec[0]
    if isinstance(kind, list):
        return kind
    if kind == "COMBO" and len(spec) > 1:
        return spec[1].get("options", [])
    return None


def input_type(spec: list) -> str:
    return "COMBO" if choices(spec) is not None else spec[0]


def test_both_model_examples_are_here():
    assert {path.name for path in EXAMPLES} == set(MISSING_FILES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_model_example_matches_the_node_definitions(comfyui, path):
    status, object_info = comfyui.get("/object_info")
    assert status == 200
    workflow = json.loads(path.read_text(encoding="utf-8"))
    for node_id, node in workflow.items():
        definition = object_info.get(node["class_type"])
        assert definition is not None, f"{path.name} node {node_id}: no node type {node['class_type']}"
        declared = {**definition["input"].get("required", {}), **definition["input"].get("optional", {})}
        required = set(definition["input"].get("required", {})) - LIVE_PLUMBING
        assert required <= set(node["inputs"]), f"node {node_id} lacks {required - set(node['inputs'])}"
        for name, value in node["inputs"].items():
            assert name in declared, f"node {node_id} ({node['class_type']}) has no input {name!r}"
            spec = declared[name]
            if isinstance(value, list):  # a link: the source's output type must fit
                source = workflow[value[0]]
                produced = object_info[source["class_type"]]["output"][value[1]]
                assert input_type(spec) in (produced, "*") or produced == "*", (node_id, name, produced, spec)
                continue
            options = choices(spec)
            if options is not None and name not in MODEL_FILE_INPUTS:
                assert value in options, f"node {node_id} input {name}: {value!r} not among {options}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_models_absent_answers_400_naming_the_missing_file(comfyui, path):
    stream_id = f"model-example-{uuid.uuid4().hex[:6]}"
    status, answer = comfyui.post_json(
        "/stream/start",
        {
            "subscribe_url": f"{comfyui.base_url}/trickle/relay/{stream_id}-in",
            "publish_url": f"{comfyui.base_url}/trickle/relay/{stream_id}-out",
            "gateway_request_id": stream_id,
            "params": {"width": 512, "height": 512, "prompt": path.read_text(encoding="utf-8")},
        },
    )
    assert status == 400, answer
    assert MISSING_FILES[path.name] in answer["error"], answer
    assert answer["node_errors"], answer  # ComfyUI's per-node errors, for the UI to point at the nodes
