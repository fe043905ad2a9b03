"""The tests' real ComfyUI: the shared launcher (``comfy_trickle.devtools.comfyui_server``) with every
test-only node pack under ``tests/custom_nodes/`` loaded beside the pack.

Logs go where ``comfyui_log_dir`` says: a pytest temporary folder, or ``$COMFY_TRICKLE_TEST_LOG_DIR``
when a developer asks for them somewhere else. Tests never write into the checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TEST_NODE_PACKS_DIR = Path(__file__).resolve().parents[1] / "custom_nodes"
ENV_LOG_DIR = "COMFY_TRICKLE_TEST_LOG_DIR"


def node_packs_for_tests() -> list[Path]:
    """The node packs under ``tests/custom_nodes/`` (one folder each)."""
    if not TEST_NODE_PACKS_DIR.is_dir():
        return []
    return [
        pack
        for pack in sorted(TEST_NODE_PACKS_DIR.iterdir())
        if pack.is_dir() and not pack.name.startswith((".", "__"))
    ]


def comfyui_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this session's ComfyUI logs go: ``$COMFY_TRICKLE_TEST_LOG_DIR`` if set, else a pytest
    temporary folder (pytest keeps the last few sessions' folders, so a failed run's log stays)."""
    requested = os.environ.get(ENV_LOG_DIR, "").strip()
    if requested:
        folder = Path(requested).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("comfyui-logs")
