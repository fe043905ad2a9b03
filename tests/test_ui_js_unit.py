"""Runs the pure-JS unit tests of web/js/common (tests/js/*.test.mjs) with `node --test`, so the suite
covers them. They need Node 18+ and nothing else (no npm packages)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

JS_TESTS_DIR = Path(__file__).parent / "js"


def test_js_unit_tests_pass():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    files = sorted(str(path) for path in JS_TESTS_DIR.glob("*.test.mjs"))
    assert files, f"no JS tests found in {JS_TESTS_DIR}"
    result = subprocess.run(
        [node, "--test", *files], capture_output=True, text=True, timeout=120, cwd=JS_TESTS_DIR.parent.parent
    )
    report = result.stdout + result.stderr
    passed = re.search(r"^# pass (\d+)", report, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)", report, re.MULTILINE)
    assert result.returncode == 0 and failed and failed.group(1) == "0", report[-4000:]
    assert passed and int(passed.group(1)) >= len(files), report[-4000:]
