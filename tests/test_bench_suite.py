"""Smoke test of the benchmark suite's entry point (``bench/run.py --quick``) against the shared ComfyUI.

It checks that the one command runs every part (codec floor, ours through real ComfyUI, pytrickle
through the same relay), moves real frames and writes a table, valid JSON and a PNG. No timing
assertions: figures on a shared 2-core machine are for the benchmark's report, not for pass/fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN = REPO_ROOT / "bench" / "run.py"

EXPECTED_CASES = {
    "throughput-ours-passthrough-512x512-120fps",
    "throughput-ours-invert-512x512-120fps",
    "latency-ours-passthrough-512x512-30fps",
    "latency-pytrickle-passthrough-512x512-30fps",
    "startup-ours-passthrough-512x512-30fps",
    "scaling-ours-passthrough-512x512-24fps",
    "scaling-ours-passthrough-512x512-24fps-x2",
}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_suite_runs_every_part_and_writes_results(comfyui, tmp_path):
    out = tmp_path / "bench"
    command = [
        sys.executable, str(RUN), "--quick", "--seconds", "2",
        "--out", str(out), "--cache", str(tmp_path / "cache"),  # tests write only to temporary folders
        "--comfyui-url", comfyui.base_url, "--comfyui-pid", str(comfyui.process.pid),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=540, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    results = json.loads((out / "results.json").read_text())
    assert EXPECTED_CASES <= set(results["cases"])
    for name, entry in results["cases"].items():
        assert entry["failed_runs"] == 0, (name, entry["runs"])
        (run,) = entry["runs"]
        assert run["streams"], name
        for stream in run["streams"]:
            assert stream["fed"] > 0, name
            assert stream["foreign_frames"] == 0, name  # every frame read back is one we fed
        assert set(run["usage"]) >= {"relay", "gateway"}, name
    # frames really went through both pipelines and came out decodable with their index intact
    for name in ("latency-ours-passthrough-512x512-30fps", "latency-pytrickle-passthrough-512x512-30fps"):
        stream = results["cases"][name]["runs"][0]["streams"][0]
        assert stream["received"] > 0, (name, stream)
        assert stream["latency_ms"]["p50"] is not None, name
    ours = results["cases"]["latency-ours-passthrough-512x512-30fps"]["runs"][0]
    assert ours["streams"][0]["engine"]["counters"]["frames_out"] > 0  # the engine's own final status
    assert results["cases"]["latency-ours-passthrough-512x512-30fps"]["median"]["pipeline_rss_peak_mib"] > 100
    floor = results["floor"]["512x512"]["median"]
    assert floor["frames"] > 0 and floor["cpu_ms_per_frame"] > 0

    table = (out / "results.txt").read_text()
    assert "(a) codec floor" in table and "targets (512x512)" in table
    assert table.strip() in proc.stdout
    with Image.open(out / "results.png") as image:
        assert image.format == "PNG"
        assert image.size[0] >= 640 and image.size[1] >= 380
