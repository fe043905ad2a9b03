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
    "unpaced-ours-passthrough-512x512-480fps",
    "latency-ours-passthrough-512x512-30fps",
    "latency-pytrickle-passthrough-512x512-30fps",
    "overload-ours-blur-512x512-30fps",
    "overload-pytrickle-blur-512x512-30fps",
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
    # the overload case's yardstick: ComfyUI ran the same blur back to back (a blur of 512x512 takes tens
    # of ms on any CPU: well under 1000 prompts a second)
    (overload,) = results["cases"]["overload-ours-blur-512x512-30fps"]["runs"]
    assert 0 < overload["executor_back_to_back_fps"] < 1000
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
    with Image.open(out / "scaling.png") as image:
        assert image.format == "PNG"
    assert str(out / "scaling.png") in proc.stdout  # listed in the "written:" line


# --- report and plot over a results document (pure logic: no ComfyUI, no network) ---

from comfy_trickle.bench.plot import render_png, render_scaling_png, scaling_series  # noqa: E402
from comfy_trickle.bench.report import render  # noqa: E402
from comfy_trickle.bench.suite import UNPACED_FEED_FPS, SuitePlan, comfyui_env  # noqa: E402
from comfy_trickle.bench.targets import evaluate_goals, evaluate_load_goals, load_goals_by_run  # noqa: E402

COUNTS = [1, 2, 4, 8, 12, 16]


def _figures(**overrides):
    base = {
        "out_fps_mean": 24.0, "out_fps_min": 23.5, "drop_pct": 0.0, "latency_p50_ms": 40.0,
        "latency_p95_ms": 45.0, "latency_max_ms": 60.0, "pipeline_cpu_percent": 50.0,
        "pipeline_cpu_ms_per_frame": 5.0, "pipeline_rss_peak_mib": 900.0, "first_output_s": 0.1,
    }  # fmt: skip
    return {**base, **overrides}


def fake_results(cases, floor_fps=250.0, floor_cpu_ms=4.0, counts=COUNTS):
    """A results document as ``run_suite`` writes it, with ``cases`` as {name: median figures}."""
    return {
        "started": "2026-11-29T00:00:00",
        "seconds": 60.0,
        "machine": {"cpus": 2, "python": "3.12"},
        "plan": {"sizes": [[512, 512], [1280, 720]], "repeat": 1, "scaling_streams": counts},
        "floor": {"512x512": {"median": {"fps": floor_fps, "cpu_ms_per_frame": floor_cpu_ms}}},
        "cases": {name: {"median": m, "runs": [{}], "failed_runs": 0} for name, m in cases.items()},
        "live": {},
    }


def goals_by_name(results):
    return {row["target"]: row for row in evaluate_goals(results)}


def verdict(goals, words):
    (row,) = [row for name, row in goals.items() if all(w in name for w in words)]
    return row["met"], row["measured"], row.get("note", "")


def test_issue16_goals_met_missed_and_not_measured():
    results = fake_results(
        {
            "latency-ours-passthrough-512x512-30fps": _figures(latency_p50_ms=18.0, latency_p95_ms=31.0),
            "latency-ours-passthrough-1280x720-30fps": _figures(latency_p50_ms=25.0, latency_p95_ms=29.0),
            "scaling-ours-passthrough-512x512-24fps-x12": _figures(drop_pct=0.5, latency_p50_ms=120.0),
            # 5.0 / 4.0 ms = 1.25x the floor's CPU per frame; 210 / 250 fps = 0.84x its rate
            "throughput-ours-passthrough-512x512-120fps": _figures(pipeline_cpu_ms_per_frame=5.0),
            f"unpaced-ours-passthrough-512x512-{UNPACED_FEED_FPS:g}fps": _figures(out_fps_mean=210.0),
        }
    )
    goals = goals_by_name(results)
    assert verdict(goals, ["p50 <= 20", "512x512"])[:2] == (True, 18.0)
    assert verdict(goals, ["p95 <= 30", "512x512"])[:2] == (False, 31.0)
    assert verdict(goals, ["p50 <= 20", "1280x720", "same gain"])[:2] == (False, 25.0)
    assert verdict(goals, ["p95 <= 30", "1280x720", "same gain"])[:2] == (True, 29.0)
    assert verdict(goals, ["12 x 24 fps", "dropped"])[:2] == (True, 0.5)
    assert verdict(goals, ["12 x 24 fps", "p50 <= 100"])[:2] == (False, 120.0)
    assert verdict(goals, ["per-frame CPU", "1.2x"])[:2] == (False, 1.25)
    assert verdict(goals, ["unpaced", "0.8x"])[:2] == (True, 0.84)

    table = render(results)
    assert "goals of issue 16" in table and "targets (512x512)" in table  # the old targets stay
    goal_lines = table.split("goals of issue 16")[1].split("goals of issue 22")[0].splitlines()
    assert any("12 x 24 fps" in line and "p50" in line and line.endswith("MISSED") for line in goal_lines)
    assert any("1280x720" in line and "25.00" in line and "MISSED" in line for line in goal_lines)


def test_issue16_goals_without_their_cases_read_not_measured():
    latency = _figures(latency_p50_ms=15.0, latency_p95_ms=25.0)
    results = fake_results({"latency-ours-passthrough-512x512-30fps": latency})
    results["floor"] = {}
    goals = evaluate_goals(results)
    measured = [row for row in goals if "512x512" in row["target"] and "glass" in row["target"]]
    assert [row["met"] for row in measured] == [True, True]
    missing = [row for row in goals if "glass" not in row["target"] or "1280x720" in row["target"]]
    assert len(missing) == 6 and all(row["met"] is None and row["measured"] is None for row in missing)
    goal_lines = render(results).split("goals of issue 16")[1].split("goals of issue 22")[0].splitlines()
    assert sum("not measured" in line for line in goal_lines) == 6


def test_issue22_goals_measure_overload_against_the_workflows_own_time_and_scaling_by_totals():
    overload = _figures(out_fps_mean=9.6, latency_p50_ms=180.0, engine_stages_ms={"workflow": 100.0})
    cases = {"overload-ours-blur-512x512-30fps": overload}
    for n, total, p50, fairness in ((8, 190.0, 40.0, 0.95), (16, 180.0, 120.0, 0.8)):
        cases[f"scaling-ours-passthrough-512x512-24fps-x{n}"] = _figures(
            out_fps_total=total, latency_p50_ms=p50, fairness=fairness, drop_pct=0.0
        )
    rows = {row["target"]: row for row in evaluate_load_goals(fake_results(cases, counts=[8, 16]))}

    def row(*words: str) -> dict:
        return next(r for target, r in rows.items() if all(w in target for w in words))

    assert row("overload", "out >=")["measured"] == 0.96 and row("overload", "out >=")["met"] is True
    p50 = row("overload: p50")
    assert p50["measured"] == 180.0 and p50["met"] is True
    assert p50["note"] == "(goal 200 ms)"
    collapse = row("no collapse 512x512")
    assert (collapse["measured"], collapse["met"]) == (0.947, False) and "180.0 vs 190.0" in collapse["note"]
    assert row("512x512: p50 <=", "every")["measured"] == 120.0 and row("512x512: p50 <=", "every")["met"]
    assert row("512x512", "fps >=")["measured"] == 0.8 and row("512x512", "fps >=")["met"] is False
    assert row("no collapse 1280x720")["met"] is None  # no 1280x720 cases: not measured
    assert row("8 x 24 fps", "0 % dropped")["met"] is True
    assert row("12 x 24 fps", "dropped")["met"] is None


def test_issue22_overload_yardstick_is_the_executors_back_to_back_rate_where_measured():
    overload = _figures(out_fps_mean=7.8, latency_p50_ms=240.0, engine_stages_ms={"workflow": 100.0},
                        executor_back_to_back_fps=8.0)  # fmt: skip
    rows = evaluate_load_goals(fake_results({"overload-ours-blur-512x512-30fps": overload}, counts=[8, 16]))
    out, p50 = rows[0], rows[1]
    # against the stage alone (10 fps) 7.8 fps would be 0.78: ComfyUI's own per-prompt work is no loss of ours
    assert (out["measured"], out["met"]) == (0.975, True) and "back to back: 8.0 fps" in out["note"]
    assert (p50["measured"], p50["met"], p50["note"]) == (240.0, True, "(goal 250 ms)")  # 2 x 125 ms


def test_issue22_goals_run_by_run_hold_only_when_every_run_holds():
    eight, twelve = "scaling-ours-passthrough-512x512-24fps-x8", "scaling-ours-passthrough-512x512-24fps-x12"
    runs = {
        eight: [_figures(drop_pct=0.0, latency_p50_ms=p50) for p50 in (30.0, 45.0, 60.0)],
        twelve: [_figures(drop_pct=drop, latency_p50_ms=80.0) for drop in (0.5, 0.9, 0.2)],
    }
    results = fake_results({name: summaries[1] for name, summaries in runs.items()}, counts=[8, 12])
    results["plan"]["repeat"] = 3
    for name, summaries in runs.items():
        results["cases"][name]["summaries"] = summaries
    goals = {goal["target"]: goal for goal in load_goals_by_run(results)}
    no_drop_p50 = goals["8 x 24 fps 512x512: p50 <= 50 ms"]
    assert [run["measured"] for run in no_drop_p50["runs"]] == [30.0, 45.0, 60.0]
    assert [run["met"] for run in no_drop_p50["runs"]] == [True, True, False]
    assert no_drop_p50["every_run"] is False  # the median (45 ms) meets it; the third run does not
    assert goals["12 x 24 fps 512x512: <= 1 % dropped"]["every_run"] is True
    assert goals["overload: p50 <= max(150 ms, 2 x frame processing ms)"]["every_run"] is None  # not run
    lines = render(results).split("run by run")[1].splitlines()
    missed = [line for line in lines if line.strip().startswith("8 x 24 fps 512x512: p50")]
    assert len(missed) == 1 and "60.00 x" in missed[0] and missed[0].endswith("MISSED")


def test_unpaced_goal_needs_a_feed_at_the_goal_rate_unless_the_output_reached_it():
    name = f"unpaced-ours-passthrough-512x512-{UNPACED_FEED_FPS:g}fps"
    # fed at 300 fps and kept up, but the goal is 0.8 x 400 = 320 fps: nothing said about the limit
    results = fake_results({name: _figures(out_fps_mean=300.0, in_fps_mean=300.0)}, floor_fps=400.0)
    met, measured, note = verdict(goals_by_name(results), ["unpaced"])
    assert (met, measured) == (None, None)
    assert "not unpaced" in note and "not unpaced" in render(results)
    assert "fed 300 fps < goal 320 fps" in note
    # fed at 360 (above the goal rate) and kept up: 0.9 x the floor, met even though the floor is faster
    kept_up = fake_results({name: _figures(out_fps_mean=360.0, in_fps_mean=360.0)}, floor_fps=400.0)
    assert verdict(goals_by_name(kept_up), ["unpaced"])[:2] == (True, 0.9)
    # fed above the goal rate, fell behind below it: missed
    behind = fake_results({name: _figures(out_fps_mean=300.0, in_fps_mean=360.0)}, floor_fps=400.0)
    assert verdict(goals_by_name(behind), ["unpaced"])[:2] == (False, 0.75)


def test_scaling_plot_renders_with_missing_points(tmp_path):
    # ours at every count except 12 (a failed case), pytrickle only up to 8 (capped), no 1280x720 at all
    cases = {
        f"scaling-ours-passthrough-512x512-24fps{'-x' + str(n) if n > 1 else ''}": _figures(
            out_fps_mean=24.0 - n, drop_pct=float(n), latency_p50_ms=30.0 * n, pipeline_cpu_percent=12.0 * n
        )
        for n in COUNTS
        if n != 12
    }
    cases.update(
        {
            f"scaling-pytrickle-passthrough-512x512-24fps{'-x' + str(n) if n > 1 else ''}": _figures(
                out_fps_mean=20.0, drop_pct=None, latency_p50_ms=5000.0, pipeline_cpu_percent=95.0 * n
            )
            for n in (1, 2, 4, 8)
        }
    )
    results = fake_results(cases)
    fps = scaling_series(results, "out_fps_mean")
    assert set(fps) == {"ours 512x512", "pytrickle 512x512"}  # no series for a size without figures
    assert dict(fps["ours 512x512"])[12] is None and dict(fps["ours 512x512"])[16] == 8.0
    assert [n for n, v in fps["pytrickle 512x512"] if v is not None] == [1, 2, 4, 8]
    assert set(scaling_series(results, "drop_pct")) == {"ours 512x512"}  # a series with no figure at all

    path = tmp_path / "scaling.png"
    render_scaling_png(results, path)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1280, 1170)  # five panels, two a row
        colours = {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 20)}
    assert (33, 102, 172) in colours and (214, 96, 77) in colours  # both series are drawn

    render_png(results, tmp_path / "results.png")  # the bar page copes with the same gaps
    empty = fake_results({})
    render_scaling_png(empty, tmp_path / "empty.png")  # no scaling case at all: axes only, no error
    assert (tmp_path / "empty.png").stat().st_size > 0


def test_full_plan_scales_to_16_streams_with_pytrickle_beside_us():
    plan = SuitePlan.full()
    names = {spec.name for spec in plan.cases()}
    for n in (12, 16):
        assert f"scaling-ours-passthrough-512x512-24fps-x{n}" in names
        assert f"scaling-pytrickle-passthrough-512x512-24fps-x{n}" in names
    assert f"unpaced-ours-passthrough-512x512-{UNPACED_FEED_FPS:g}fps" in names
    assert f"unpaced-pytrickle-passthrough-512x512-{UNPACED_FEED_FPS:g}fps" in names
    assert int(comfyui_env(max(plan.scaling_streams))["COMFY_TRICKLE_MAX_STREAMS"]) >= 16

    plan.pytrickle_max_streams = 8
    capped = {spec.name for spec in plan.cases()}
    assert "scaling-pytrickle-passthrough-512x512-24fps-x8" in capped
    assert "scaling-pytrickle-passthrough-512x512-24fps-x12" not in capped
    assert "scaling-ours-passthrough-512x512-24fps-x16" in capped
    assert max(SuitePlan.quick().scaling_streams) <= 2  # the smoke run stays small
