"""Packaging as the Comfy Registry and ComfyUI-Manager expect it (no ComfyUI needed)."""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def requirement_lines() -> list[str]:
    lines = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def test_dependencies_equal_requirements_txt(pyproject: dict) -> None:
    assert pyproject["project"]["dependencies"] == requirement_lines()
    assert "dependencies" not in pyproject["project"].get("dynamic", [])


def test_dependencies_leave_torch_to_comfyui_and_have_no_urls(pyproject: dict) -> None:
    for requirement in pyproject["project"]["dependencies"]:
        assert requirement_name(requirement) not in {"torch", "torchvision", "torchaudio", "asyncio"}
        assert "://" not in requirement and " @ " not in requirement and "git+" not in requirement
    names = {requirement_name(r) for r in pyproject["project"]["dependencies"]}
    assert names == {"aiohttp", "av", "numpy", "prometheus-client"}


def test_registry_metadata_is_complete(pyproject: dict) -> None:
    project = pyproject["project"]
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]{0,99}", project["name"])
    assert "comfyui" not in project["name"].lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["description"]
    assert project["license"] == {"text": "MIT"}
    assert (REPO_ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert project["requires-python"].startswith(">=3.")
    assert "Operating System :: OS Independent" in project["classifiers"]
    assert project["urls"]["Repository"].startswith("https://github.com/")
    comfy = pyproject["tool"]["comfy"]
    assert comfy["PublisherId"]
    assert comfy["DisplayName"]
    assert comfy["Icon"].startswith("https://") and comfy["Icon"].endswith(".svg")


def test_requires_comfyui_is_the_oldest_tested_comfyui(pyproject: dict) -> None:
    tested = re.search(r'^COMFY_TRICKLE_COMFYUIS="([^"]+)"', (REPO_ROOT / "scripts" / "env.sh").read_text(),
                       re.MULTILINE)  # fmt: skip
    assert tested, "scripts/env.sh names the tested ComfyUIs"
    versions = sorted(tested.group(1).split(), key=lambda v: tuple(map(int, v.split("."))))
    assert pyproject["tool"]["comfy"]["requires-comfyui"] == f">={versions[0]}"


def test_no_install_script() -> None:
    assert not (REPO_ROOT / "install.py").exists()


def test_ruff_checks_what_the_registry_checks(pyproject: dict) -> None:
    lint = pyproject["tool"]["ruff"]["lint"]
    selected = set(lint["select"])
    ignored = set(lint.get("ignore", []))
    for rule in ("S102", "S307", "T201"):
        assert any(rule.startswith(prefix) for prefix in selected), rule
        assert not any(rule.startswith(prefix) for prefix in ignored), rule


def comfyignore_excludes(relative_path: str) -> bool:
    """True when a .comfyignore pattern (gitignore subset: dir/, name, glob) covers the path."""
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".comfyignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = relative_path.split("/")
    for pattern in patterns:
        anchored = pattern.strip("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            is_dir = depth < len(parts)
            if pattern.endswith("/") and not is_dir:
                continue
            if fnmatch.fnmatch(prefix, anchored) or fnmatch.fnmatch(parts[depth - 1], anchored):
                return True
    return False


@pytest.mark.parametrize(
    "path",
    [
        "tests/test_packaging.py",
        "tests/conftest.py",
        "bench/any_bench.py",
        "scripts/setup",
        "devtools/demo.py",
        "devtools/comfyui_server.py",
        "out/comfy-trickle-demo.mp4",
    ],
)
def test_comfyignore_keeps_dev_files_out_of_the_archive(path: str) -> None:
    assert comfyignore_excludes(path)


@pytest.mark.parametrize(
    "path",
    [
        "__init__.py",
        "README.md",
        "LICENSE",
        "pyproject.toml",
        "requirements.txt",
        "web/js/status.js",
        "dev/routes.py",  # the dev relay and test source: on by default in ComfyUI (COMFY_TRICKLE_DEV_RELAY)
        "media/jpeg.py",
    ],
)
def test_comfyignore_keeps_the_pack_itself(path: str) -> None:
    assert not comfyignore_excludes(path)


# Folders of the checkout that users never get (besides hidden ones like .venv); the rest is the pack.
CHECKOUT_ONLY = ("tests", "bench", "scripts", "devtools", "examples", "artifacts", "out")


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against the pack root (``comfy_trickle``)."""
    package = ["comfy_trickle", *path.relative_to(REPO_ROOT).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_the_pack_never_imports_checkout_only_code() -> None:
    """What users install never imports devtools/ (the demo, the launcher) or the test/bench folders."""
    pack_files = [
        path
        for path in REPO_ROOT.rglob("*.py")
        if path.relative_to(REPO_ROOT).parts[0] not in CHECKOUT_ONLY
        and not path.relative_to(REPO_ROOT).parts[0].startswith(".")
        and not comfyignore_excludes(path.relative_to(REPO_ROOT).as_posix())
    ]
    assert REPO_ROOT / "dev" / "routes.py" in pack_files
    assert not (REPO_ROOT / "demo.py").exists(), "the demo lives in devtools/, not in the pack"
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(
            name
            for name in imported_modules(path)
            if name.split(".")[:2] in [["comfy_trickle", folder] for folder in CHECKOUT_ONLY]
        )
        for path in pack_files
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_root_package_defines_no_node_class_mappings() -> None:
    tree = ast.parse((REPO_ROOT / "__init__.py").read_text(encoding="utf-8"))
    assigned = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    assert "NODE_CLASS_MAPPINGS" not in assigned
    assert "WEB_DIRECTORY" in assigned


def test_root_package_and_core_import_without_comfyui(tmp_path: Path) -> None:
    # A fresh interpreter: this process may already hold modules other tests imported.
    (tmp_path / "comfy_trickle").symlink_to(REPO_ROOT, target_is_directory=True)
    probe = (
        "import importlib, inspect, sys\n"
        "import comfy_trickle\n"
        "for name in ('trickle', 'media', 'streams'):\n"
        "    importlib.import_module('comfy_trickle.' + name)\n"
        "assert inspect.iscoroutinefunction(comfy_trickle.comfy_entrypoint)\n"
        "print(comfy_trickle.WEB_DIRECTORY)\n"
        "leaked = sorted({'comfy_api', 'server', 'nodes', 'folder_paths', 'execution'} & set(sys.modules))\n"
        "print('LEAKED', leaked)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    web_directory, leaked_line = done.stdout.splitlines()[-2:]
    assert leaked_line == "LEAKED []"
    assert any((REPO_ROOT / web_directory).rglob("*.js"))
