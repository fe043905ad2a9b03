"""The pack loads into each tested ComfyUI the way a user installs it, and answers there."""

from __future__ import annotations

import re

import pytest
from comfy_trickle.devtools.comfyui_server import PACK_DIR_NAME, ComfyUIServer

OUR_PACK_PATH = f"custom_nodes/{PACK_DIR_NAME}"


def traceback_blocks(log: str) -> list[str]:
    """Each 'Traceback ...' block of the log, up to the next line that is not indented."""
    blocks: list[str] = []
    lines = log.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            block = [line]
            for follower in lines[index + 1 :]:
                block.append(follower)
                if follower and not follower.startswith((" ", "\t")):
                    break  # the exception line ends the block
            blocks.append("\n".join(block))
    return blocks


def test_pack_loads_without_import_errors(comfyui: ComfyUIServer) -> None:
    # Only the start-up part: the server is shared, and later prompts may log expected node errors.
    log = comfyui.startup_log
    ours = [block for block in traceback_blocks(log) if OUR_PACK_PATH in block or "comfy_trickle" in block]
    assert ours == [], "tracebacks from our pack in the ComfyUI log:\n" + "\n\n".join(ours)
    bad_lines = [
        line
        for line in log.splitlines()
        if OUR_PACK_PATH in line
        and any(
            marker in line
            for marker in (
                "Cannot import",
                "IMPORT FAILED",
                "Error while calling comfy_entrypoint",
                "Unable to parse pyproject",
            )
        )
    ]
    assert bad_lines == []
    # ComfyUI lists every custom node it imported with its import time; ours must be among them.
    # (0.33 and on start each line with its level tag, "[INFO]")
    import_line = rf"^(?:\[[A-Z]+\])?\s*[\d.]+ seconds: .*{re.escape(OUR_PACK_PATH)}\s*$"
    assert re.search(import_line, log, re.MULTILINE), log


def test_nodes_are_listed_under_our_category(comfyui: ComfyUIServer) -> None:
    status, info = comfyui.get("/object_info")
    assert status == 200
    ours = {name: node for name, node in info.items() if node["python_module"].endswith(PACK_DIR_NAME)}
    assert {"TrickleInput", "TrickleOutput"} <= set(ours)
    for name, node in ours.items():
        assert node["category"].split("/")[0] == "trickle", (name, node["category"])
    assert ours["TrickleInput"]["display_name"]


@pytest.mark.parametrize("path", ["/streams", "/api/streams"])
def test_stream_list_route_answers_json(comfyui: ComfyUIServer, path: str) -> None:
    result = comfyui.request("GET", path)
    assert result.status == 200
    assert result.content_type == "application/json"
    body = result.json()
    assert isinstance(body["streams"], dict)
    assert body["count"] == len(body["streams"])


def test_web_extension_is_listed_and_served(comfyui: ComfyUIServer) -> None:
    status, urls = comfyui.get("/extensions")
    assert status == 200
    ours = [url for url in urls if url.startswith(f"/extensions/{PACK_DIR_NAME}/")]
    assert ours, urls
    assert all(url.endswith(".js") for url in ours), ours
    registering = []
    for url in ours:
        served = comfyui.request("GET", url)
        assert served.status == 200, url
        assert "javascript" in served.content_type, (url, served.content_type)
        if b"registerExtension" in served.body:
            registering.append(url)
    assert registering, "none of our scripts registers a ComfyUI extension"


def test_live_nodes_queued_without_a_stream_fail_with_a_clear_message(comfyui: ComfyUIServer) -> None:
    workflow = {
        "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
        "2": {"class_type": "TrickleOutput", "inputs": {"images": ["1", 0], "stream_id": ""}},
    }
    prompt_id = comfyui.queue_prompt(workflow)
    entry = comfyui.wait_for_history(prompt_id, timeout=30)

    assert entry["status"]["status_str"] == "error"
    errors = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
    assert len(errors) == 1, entry["status"]["messages"]
    assert errors[0]["node_type"] == "TrickleInput"
    assert "stream" in errors[0]["exception_message"].lower(), errors[0]["exception_message"]
    # The failure is the prompt's, not the server's: ComfyUI keeps serving.
    assert comfyui.get("/system_stats")[0] == 200
