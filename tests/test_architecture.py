"""docs/ARCHITECTURE.md's layout table is the law: every product module imports only what its row allows.

The table's "may import" column names, in backticks, the pack folders (``streams/``) and the outside
packages (``aiohttp``, ComfyUI's ``server``) a row's code may import; the standard library is always allowed.
A row for one file (``media/frames.py``) adds to its folder's row. This test reads the table and every real
``import`` of the product code (with ``ast``), so the doc and the code cannot drift apart.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = REPO_ROOT / "docs" / "ARCHITECTURE.md"
# Not product code: never loaded by ComfyUI for a user.
NOT_PRODUCT = {"tests", "bench", "examples", "example_workflows", "scripts", "docs", "web", "devtools"}
TABLE_ROW = re.compile(r"^\|\s*`([^`]+)`[^|]*\|[^|]*\|([^|]*)\|\s*$")


def layout_rules() -> dict[str, set[str]]:
    """Row path (``trickle``, ``__init__``) -> names its "may import" column allows."""
    rules: dict[str, set[str]] = {}
    in_layout = False
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            in_layout = line.strip() == "## Layout"
            continue
        match = TABLE_ROW.match(line) if in_layout else None
        if match:
            path = match.group(1).strip().rstrip("/").removesuffix(".py")
            rules[path] = {name.strip() for name in re.findall(r"`([^`]+)`", match.group(2))}
    return rules


def product_modules() -> list[Path]:
    return sorted(
        path for path in REPO_ROOT.rglob("*.py")
        if path.relative_to(REPO_ROOT).parts[0] not in NOT_PRODUCT and ".git" not in path.parts
        and "__pycache__" not in path.parts
    )


def owner(path: Path) -> str:
    """The layout row of a module: its top folder, or the module itself at the pack root."""
    parts = path.relative_to(REPO_ROOT).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def allowed_imports(path: Path) -> set[str]:
    """What a module's rows allow: its folder's row, a row of its own, and its own folder."""
    rules = layout_rules()
    row = owner(path)
    own_file = path.relative_to(REPO_ROOT).as_posix().removesuffix(".py")
    return rules.get(row, set()) | rules.get(own_file, set()) | {f"{row}/"}


def imported_names(path: Path) -> set[str]:
    """What a module imports: ``folder/`` for the pack's own code (relative imports), the top-level name
    for everything else (``aiohttp``, ComfyUI's ``server`` and ``nodes``)."""
    rel_parts = path.relative_to(REPO_ROOT).parts
    package_depth = len(rel_parts) - 1  # folders between the pack root and this file
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.add((node.module or "").split(".")[0])
                continue
            up = node.level - 1  # levels above this file's package
            base = list(rel_parts[:package_depth])[: max(0, package_depth - up)]
            target = base + (node.module.split(".") if node.module else [])
            if target:
                names.add(f"{target[0]}/")
            else:  # "from .. import x" at the pack root: x is a top-level module
                names.update(f"{alias.name}/" for alias in node.names)
    return names


def test_every_layout_row_names_real_code() -> None:
    rules = layout_rules()
    assert rules, "no layout table found in docs/ARCHITECTURE.md"
    for path in rules:
        assert (REPO_ROOT / path).is_dir() or (REPO_ROOT / f"{path}.py").is_file(), path


def test_every_product_module_has_a_row() -> None:
    rules = layout_rules()
    missing = sorted({owner(p) for p in product_modules()} - set(rules))
    assert not missing, f"product code without a row in docs/ARCHITECTURE.md: {missing}"


@pytest.mark.parametrize("path", product_modules(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_module_imports_only_what_its_row_allows(path: Path) -> None:
    allowed = allowed_imports(path)
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    forbidden = sorted(name for name in imported_names(path) - stdlib - allowed if name)
    where = path.relative_to(REPO_ROOT)
    assert not forbidden, f"{where} imports {forbidden}; its rows allow {sorted(allowed)}"


def test_only_host_comfy_api_imports_comfy_api() -> None:
    importers = sorted(
        str(path.relative_to(REPO_ROOT)) for path in product_modules() if "comfy_api" in imported_names(path)
    )
    assert importers == ["host/comfy_api.py"]


def test_the_core_never_imports_comfyui() -> None:
    comfyui_modules = {
        "comfy_api", "server", "execution", "nodes", "folder_paths", "comfy", "comfy_execution"
    }
    core = [path for path in product_modules() if owner(path) in ("trickle", "media", "streams")]
    leaks = {str(path.relative_to(REPO_ROOT)): imported_names(path) & comfyui_modules for path in core}
    assert not {module: names for module, names in leaks.items() if names}
