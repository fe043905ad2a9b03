"""The example workflows: ComfyUI lists and serves the UI templates, they match their API-format twins
under the current node definitions, and every API example passes ``/stream/start``'s validation."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import av
import numpy as np
import pytest
from comfy_trickle.examples.make_templates import API_DIR, EXAMPLES_DIR, build_templates, render, thumbnail

PACK = "comfy-trickle"


def test_templates_are_generated_from_the_api_examples(comfyui):
    status, object_info = comfyui.get("/object_info")
    assert status == 200
    expected = build_templates(object_info)
    committed = {path.name: path.read_text(encoding="utf-8") for path in EXAMPLES_DIR.glob("*.json")}
    assert set(committed) == set(expected) == {"passthrough.json", "invert.json", "tinted_negative.json"}
    for name, graph in expected.items():
        assert committed[name] == render(graph), (
            f"example_workflows/{name} is stale: run python -m comfy_trickle.examples.make_templates"
        )


def test_comfyui_lists_and_serves_the_templates(comfyui):
    status, templates = comfyui.get("/workflow_templates")
    assert status == 200
    assert sorted(templates[PACK]) == ["invert", "passthrough", "tinted_negative"]
    for name in templates[PACK]:
        status, graph = comfyui.get(f"/api/workflow_templates/{PACK}/{name}.json")
        assert status == 200
        assert graph == json.loads((EXAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))
        twin = graph["extra"]["comfy_trickle"]["api_workflow"]
        status, api = comfyui.get(f"/api/workflow_templates/{PACK}/{twin}")
        assert status == 200 and api == json.loads((EXAMPLES_DIR / twin).read_text(encoding="utf-8"))
        # the template browser shows <name>.jpg beside each template
        picture = comfyui.request("GET", f"/api/workflow_templates/{PACK}/{name}.jpg")
        assert picture.status == 200 and picture.body[:2] == b"\xff\xd8"
        with av.open(str(EXAMPLES_DIR / f"{name}.jpg")) as container:
            rgb = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)
        assert np.abs(rgb - thumbnail(api).astype(np.float32)).mean() < 4.0, name


def test_ui_graph_links_match_the_api_workflow():
    for api_path in API_DIR.glob("*.json"):
        api = json.loads(api_path.read_text(encoding="utf-8"))
        name = "passthrough" if api_path.stem == "seed_passthrough" else api_path.stem
        graph = json.loads((EXAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))
        api_links = {
            (node_id, input_name, value[0], value[1])
            for node_id, node in api.items()
            for input_name, value in node["inputs"].items()
            if isinstance(value, list)
        }
        nodes = {node["id"]: node for node in graph["nodes"]}
        ui_links = {
            (str(to_node), nodes[to_node]["inputs"][to_slot]["name"], str(from_node), from_slot)
            for _, from_node, from_slot, to_node, to_slot, _ in graph["links"]
        }
        assert ui_links == api_links, api_path.name
        assert {str(i) for i in nodes} == set(api)


def test_every_api_example_passes_stream_start_validation(comfyui):
    for path in sorted(Path(API_DIR).glob("*.json")):
        stream_id = f"example-{path.stem.replace('_', '-')}-{uuid.uuid4().hex[:4]}"
        channel = f"{stream_id}-in"
        assert comfyui.request("POST", f"/trickle/relay/{channel}").status == 200
        status, answer = comfyui.post_json(
            "/stream/start",
            {
                "subscribe_url": f"{comfyui.base_url}/trickle/relay/{channel}",
                "publish_url": f"{comfyui.base_url}/trickle/relay/{stream_id}-out",
                "gateway_request_id": stream_id,
                "params": {"width": 256, "height": 256, "prompt": path.read_text(encoding="utf-8")},
            },
        )
        assert status == 200, (path.name, answer)
        status, _ = comfyui.post_json(f"/stream/{stream_id}/stop", {})
        assert status == 200


@pytest.mark.browser
@pytest.mark.timeout(180)
async def test_templates_load_in_the_real_frontend_as_their_api_graphs(comfyui):
    """Load each template in ComfyUI's own frontend (headless Chromium) and export it: the API graph
    it gives is the example's API workflow (plus widget defaults the stream fills in anyway)."""
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            await page.goto(comfyui.base_url + "/")
            await page.wait_for_function("window.app && window.app.graph", timeout=120_000)
            for api_path in sorted(API_DIR.glob("*.json")):
                name = "passthrough" if api_path.stem == "seed_passthrough" else api_path.stem
                exported = await page.evaluate(
                    """async (url) => {
                        const graph = await (await fetch(url)).json();
                        await window.app.loadGraphData(graph, true, true, "template");
                        return (await window.app.graphToPrompt()).output;
                    }""",
                    f"/api/workflow_templates/{PACK}/{name}.json",
                )
                api = json.loads(api_path.read_text(encoding="utf-8"))
                compat = {"LoadTensor": "TrickleInput", "SaveTensor": "TrickleOutput"}
                assert set(exported) == set(api), name
                for node_id, node in api.items():
                    assert exported[node_id]["class_type"] == compat.get(
                        node["class_type"], node["class_type"]
                    )
                    for input_name, value in node["inputs"].items():
                        assert exported[node_id]["inputs"][input_name] == value, (name, node_id, input_name)
        finally:
            await browser.close()
