"""Demo smoke run against the session's ComfyUI: the mp4 it writes shows the tinted negative.

The demo starts ComfyUI with the same launcher as the test fixture (``devtools/comfyui_server.py``);
running it here would cost one more ComfyUI start, so this drives ``--comfyui-url`` (the rest is
identical). Everything is written under pytest's temporary folder, never into the checkout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from comfy_trickle.devtools.demo import build_parser
from comfy_trickle.media.synthetic import make_test_frame, read_frame_index

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "example_workflows" / "api" / "tinted_negative.json"


def tint_of(workflow: dict) -> tuple[np.ndarray, float]:
    """The tint colour (EmptyImage) and blend factor (ImageBlend) the example workflow uses."""
    color = next(n for n in workflow.values() if n["class_type"] == "EmptyImage")["inputs"]["color"]
    factor = next(n for n in workflow.values() if n["class_type"] == "ImageBlend")["inputs"]["blend_factor"]
    rgb = np.array([(color >> 16) & 255, (color >> 8) & 255, color & 255], dtype=np.float32)
    return rgb, float(factor)


def files_in(folder: Path) -> dict[str, tuple[int, int]]:
    """name -> (size, mtime_ns) of every file under ``folder`` (empty when it does not exist)."""
    if not folder.is_dir():
        return {}
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


def test_demo_writes_into_the_gitignored_out_folder_by_default():
    """Without --output the mp4 lands in the checkout's out/ (ignored by git), whatever the cwd is."""
    default = Path(build_parser().parse_args([]).output)
    assert default == REPO / "out" / "comfy-trickle-demo.mp4"
    assert "/out/" in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()


@pytest.mark.timeout(180)
def test_demo_writes_an_mp4_showing_the_effect(comfyui, tmp_path):
    """Run from an empty working folder: the mp4 lands where --output says, no scratch MPEG-TS is left
    beside it, and nothing at all is written where the demo was started."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    output = tmp_path / "out" / "demo.mp4"
    users_demo_output = files_in(REPO / "out")  # a developer's own scripts/demo result stays as it is
    run = subprocess.run(
        [sys.executable, "-m", "comfy_trickle.devtools.demo", "--comfyui-url", comfyui.base_url,
         "--seconds", "5", "--width", "256", "--height", "256", "--fps", "20", "--output", str(output)],
        capture_output=True, text=True, timeout=150, check=False, cwd=workdir,
    )  # fmt: skip
    log = run.stdout + run.stderr
    assert run.returncode == 0, log
    assert f"Output video: {output}" in log
    assert "frames in" in log and "latency p50" in log  # progress lines
    assert list(workdir.iterdir()) == []
    assert [p.name for p in output.parent.iterdir()] == [output.name]  # no scratch MPEG-TS left beside it
    assert files_in(REPO / "out") == users_demo_output

    tint, factor = tint_of(json.loads(WORKFLOW.read_text()))
    errors, indices = [], []
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio, "the tone passes through"
        for frame in container.decode(video=0):
            out = frame.to_ndarray(format="rgb24").astype(np.float32)
            # undo the effect to read the frame index the source stamped, then compare with the effect
            # applied to that exact source frame
            source_estimate = np.clip(255 - (out - factor * tint) / (1 - factor), 0, 255).astype(np.uint8)
            index = read_frame_index(source_estimate)
            source = make_test_frame(index, 256, 256).astype(np.float32)
            expected = (1 - factor) * (255 - source) + factor * tint
            errors.append(float(np.abs(out - expected).mean()))
            indices.append(index)
    assert len(indices) >= 40, log  # about 5 s at 20 fps, minus start-up
    assert indices == sorted(indices) and len(set(indices)) == len(indices), indices
    assert max(errors) < 6.0, (max(errors), log)
