"""Build the UI-format templates in ``example_workflows/`` from the API-format ones in ``api/`` below it.

ComfyUI lists ``example_workflows/*.json`` in its template browser and loads them as UI graphs, which
need node positions, sockets, links and widget values in the order the node definitions give. The API
format (what ``/stream/start`` takes) has none of that, so the templates are generated from it with the
node definitions of a running ComfyUI (``GET /object_info``)::

    python -m comfy_trickle.examples.make_templates --comfyui http://127.0.0.1:8188

comfystream's ``LoadTensor``/``SaveTensor`` are drawn as ``TrickleInput``/``TrickleOutput`` (the stream
maps them the same way at start). tests/test_example_workflows.py checks the committed templates match.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..media.synthetic import make_test_frame

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "example_workflows"
API_DIR = EXAMPLES_DIR / "api"
UI_CLASS = {"LoadTensor": "TrickleInput", "SaveTensor": "TrickleOutput"}
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
TEMPLATE_NAMES = {"seed_passthrough": "passthrough"}  # the UI template needs no comfystream nodes

Json = dict[str, Any]


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def _input_specs(definition: Json) -> list[tuple[str, Any, Json]]:
    """(name, type, options) of each visible input in definition order (required, then optional)."""
    specs = []
    order = definition.get("input_order", {})
    for section in ("required", "optional"):
        declared = definition.get("input", {}).get(section, {})
        for name in order.get(section, list(declared)):
            spec = declared[name]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            specs.append((name, spec[0], options))
    return specs


def _is_widget(input_type: Any) -> bool:
    return isinstance(input_type, list) or input_type in WIDGET_TYPES


def _default(input_type: Any, options: Json) -> Any:
    if "default" in options:
        return options["default"]
    if isinstance(input_type, list):  # V1 combo: the option list is the type
        return input_type[0] if input_type else ""
    if input_type == "COMBO":
        return (options.get("options") or [""])[0]
    return {"INT": 0, "FLOAT": 0.0, "BOOLEAN": False}.get(input_type, "")


def _depths(api: Json) -> dict[str, int]:
    depths: dict[str, int] = {}

    def depth(node_id: str, seen: frozenset[str] = frozenset()) -> int:
        if node_id in depths:
            return depths[node_id]
        if node_id in seen:
            raise ValueError(f"cycle through node {node_id}")
        parents = [v[0] for v in api[node_id]["inputs"].values() if _is_link(v)]
        depths[node_id] = 1 + max((depth(p, seen | {node_id}) for p in parents), default=-1)
        return depths[node_id]

    for node_id in api:
        depth(node_id)
    return depths


def api_to_ui(api: Json, object_info: Json) -> Json:
    """The UI-format graph of API-format workflow ``api`` (node ids must be integers as strings)."""
    depths = _depths(api)
    ordered = sorted(api, key=lambda nid: (depths[nid], int(nid)))
    rows: dict[int, int] = {}
    nodes: dict[str, Json] = {}
    for order, node_id in enumerate(ordered):
        node = api[node_id]
        class_type = UI_CLASS.get(node["class_type"], node["class_type"])
        definition = object_info[class_type]
        inputs, widgets = [], []
        for name, input_type, options in _input_specs(definition):
            value = node["inputs"].get(name)
            if _is_widget(input_type):
                if _is_link(value):
                    raise ValueError(f"node {node_id}: linked widget input {name} is not supported")
                widgets.append(_default(input_type, options) if value is None else value)
            else:
                inputs.append({"name": name, "type": input_type, "link": None})
        row = rows.get(depths[node_id], 0)
        rows[depths[node_id]] = row + 1
        ui_node: Json = {
            "id": int(node_id),
            "type": class_type,
            "pos": [80 + 360 * depths[node_id], 80 + 220 * row],
            "size": [300, 80 + 30 * max(len(inputs), len(definition["output"])) + 28 * len(widgets)],
            "flags": {},
            "order": order,
            "mode": 0,
            "inputs": inputs,
            "outputs": [
                {"name": name, "type": kind, "links": [], "slot_index": slot}
                for slot, (name, kind) in enumerate(
                    zip(definition["output_name"], definition["output"], strict=True)
                )
            ],
            "properties": {"Node name for S&R": class_type},
            "widgets_values": widgets,
        }
        title = node.get("_meta", {}).get("title")
        if title:
            ui_node["title"] = title
        nodes[node_id] = ui_node

    links = []
    for node_id in ordered:
        for name, value in api[node_id]["inputs"].items():
            if not _is_link(value):
                continue
            source_id, slot = value
            link_id = len(links) + 1
            target = nodes[node_id]
            target_slot = next(i for i, inp in enumerate(target["inputs"]) if inp["name"] == name)
            target["inputs"][target_slot]["link"] = link_id
            source_output = nodes[source_id]["outputs"][slot]
            source_output["links"].append(link_id)
            links.append([link_id, int(source_id), slot, int(node_id), target_slot, source_output["type"]])
    for ui_node in nodes.values():
        for output in ui_node["outputs"]:
            if not output["links"]:
                output["links"] = None
    return {
        "last_node_id": max(int(n) for n in api),
        "last_link_id": len(links),
        "nodes": [nodes[nid] for nid in ordered],
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


def build_templates(object_info: Json) -> dict[str, Json]:
    """Template file name -> UI graph, for every API example."""
    templates = {}
    for path in sorted(API_DIR.glob("*.json")):
        name = TEMPLATE_NAMES.get(path.stem, path.stem)
        graph = api_to_ui(json.loads(path.read_text(encoding="utf-8")), object_info)
        # where the API-format twin is, for people and for the UI (served under /api/workflow_templates)
        graph["extra"]["comfy_trickle"] = {"api_workflow": f"api/{path.name}"}
        templates[f"{name}.json"] = graph
    return templates


def thumbnail(api: Json, size: int = 256) -> np.ndarray:
    """An illustration of the example's effect on the test pattern (uint8 RGB), for the template browser.

    Drawn with numpy from the workflow's own parameters (invert; blend factor and tint colour), not by
    running ComfyUI, so it can be made anywhere; ``tests/test_demo.py`` checks the real effect.
    """
    picture = make_test_frame(40, size, size).astype(np.float32)
    classes = {node["class_type"]: node["inputs"] for node in api.values()}
    if "ImageInvert" in classes:
        picture = 255.0 - picture
    if "ImageBlend" in classes and "EmptyImage" in classes:
        color = classes["EmptyImage"]["color"]
        tint = np.array([(color >> 16) & 255, (color >> 8) & 255, color & 255], dtype=np.float32)
        factor = classes["ImageBlend"]["blend_factor"]
        picture = (1 - factor) * picture + factor * tint
    return np.clip(picture, 0, 255).astype(np.uint8)


def write_jpeg(rgb: np.ndarray, path: Path) -> None:
    """One RGB image as a JPEG file (PyAV's mjpeg encoder; no imaging library needed)."""
    with av.open(str(path), "w", format="mjpeg") as container:
        stream = container.add_stream("mjpeg", rate=1)
        stream.width, stream.height = rgb.shape[1], rgb.shape[0]
        stream.pix_fmt = "yuvj420p"
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
        for packet in (*stream.encode(frame), *stream.encode(None)):
            container.mux(packet)


def render(graph: Json) -> str:
    """The file text of a template (stable, so regenerating changes nothing)."""
    return json.dumps(graph, indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--comfyui", default="http://127.0.0.1:8188", help="a running ComfyUI with the pack")
    args = parser.parse_args()
    with urllib.request.urlopen(args.comfyui.rstrip("/") + "/object_info", timeout=30) as resp:  # noqa: S310
        object_info = json.load(resp)
    for file_name, graph in build_templates(object_info).items():
        (EXAMPLES_DIR / file_name).write_text(render(graph), encoding="utf-8")
        api = json.loads((EXAMPLES_DIR / graph["extra"]["comfy_trickle"]["api_workflow"]).read_text("utf-8"))
        # the template browser shows <name>.jpg next to <name>.json
        write_jpeg(thumbnail(api), EXAMPLES_DIR / file_name.replace(".json", ".jpg"))
        print(f"wrote {EXAMPLES_DIR / file_name} and its thumbnail")
    return 0


if __name__ == "__main__":
    sys.exit(main())
