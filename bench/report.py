"""The suite's results as a printed table: figures, ratios to the codec floor and to pytrickle, targets."""

from __future__ import annotations

from typing import Any

from .suite import LATENCY_FPS, SCALING_FPS, THROUGHPUT_FEED_FPS, UNPACED_FEED_FPS
from .targets import (
    VERDICTS,
    case_median,
    evaluate_goals,
    evaluate_load_goals,
    evaluate_targets,
    load_goals_by_run,
    overload_figures,
)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio(ours: Any, other: Any) -> str:
    if not isinstance(ours, (int, float)) or not isinstance(other, (int, float)) or other == 0:
        return "-"
    return f"{ours / other:.2f}x"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return out


def sizes_of(results: dict[str, Any]) -> list[str]:
    return [f"{w}x{h}" for w, h in results["plan"]["sizes"]]


def target_rows(targets: list[dict[str, Any]]) -> list[str]:
    rows = [
        [t["target"], _fmt(t["measured"], 2), " ".join(filter(None, [VERDICTS[t["met"]], t.get("note")]))]
        for t in targets
    ]
    return _table(["target", "measured", ""], rows)


def load_goal_run_rows(goals: list[dict[str, Any]]) -> list[str]:
    count = max((len(goal["runs"]) for goal in goals), default=0)
    rows = [
        [goal["target"]]
        + [_fmt(run["measured"], 2) + (" x" if run["met"] is False else "") for run in goal["runs"]]
        + [VERDICTS[goal["every_run"]]]
        for goal in goals
    ]
    return _table(["goal", *(f"run {i + 1}" for i in range(count)), "every run"], rows)


def _throughput_rows(
    results: dict[str, Any], kind: str, feed_fps: float, size: str, floor: dict[str, Any]
) -> list[list[str]]:
    pt = case_median(results, kind, "pytrickle", "passthrough", size, feed_fps) or {}
    rows = []
    for workflow in ("passthrough", "invert"):
        for pipeline in ("ours", "pytrickle"):
            m = case_median(results, kind, pipeline, workflow, size, feed_fps)
            if not m:
                continue
            ours = pipeline == "ours"
            rows.append(
                [
                    size,
                    f"{feed_fps:g}",
                    _fmt(m.get("in_fps_mean")),
                    workflow,
                    pipeline,
                    _fmt(m.get("out_fps_mean")),
                    _fmt(m.get("drop_pct")),
                    _fmt(m.get("latency_p50_ms"), 0),
                    _fmt(m.get("latency_max_ms"), 0),
                    _fmt(m.get("latency_growth_ms"), 0),
                    _fmt(m.get("pipeline_cpu_percent"), 0),
                    _fmt(m.get("pipeline_cpu_ms_per_frame"), 2),
                    _ratio(m.get("out_fps_mean"), floor.get("fps")),
                    _ratio(m.get("out_fps_mean"), pt.get("out_fps_mean")) if ours else "",
                    _ratio(m.get("pipeline_cpu_ms_per_frame"), floor.get("cpu_ms_per_frame")),
                    _ratio(m.get("pipeline_cpu_ms_per_frame"), pt.get("pipeline_cpu_ms_per_frame"))
                    if ours
                    else "",
                ]
            )
    return rows


def render(results: dict[str, Any]) -> str:
    plan = results["plan"]
    lines = [
        f"comfy-trickle benchmark - {results['started']}, {results['machine']['cpus']} CPUs, "
        f"medians of {plan['repeat']} run(s), {results['seconds']:.0f} s in all"
        + (f", up to {batch} frames per prompt" if (batch := plan.get("frames_per_prompt", 1)) > 1 else ""),
        "",
    ]
    sizes = sizes_of(results)
    floors = {s: (results.get("floor", {}).get(s) or {}).get("median") or {} for s in sizes}

    lines.append(
        "(a) codec floor: PyAV demux+decode -> rgb24 -> yuv420p -> x264 superfast/zerolatency, no network"
    )
    rows = [
        [
            s,
            _fmt(f.get("fps")),
            _fmt(f.get("total_ms"), 2),
            _fmt(f.get("cpu_ms_per_frame"), 2),
            f"{_fmt(f.get('decode_ms'), 2)} / {_fmt(f.get('to_rgb_ms'), 2)} / "
            f"{_fmt(f.get('from_rgb_ms'), 2)} / {_fmt(f.get('encode_mux_ms'), 2)}",
        ]
        for s, f in floors.items()
        if f
    ]
    lines += _table(
        ["size", "fps", "wall ms/frame", "CPU ms/frame", "decode / to_rgb / from_rgb / encode ms"], rows
    )

    lines += [
        "",
        f"1. throughput: one stream fed at {THROUGHPUT_FEED_FPS:g} fps, and 'unpaced' at "
        f"{UNPACED_FEED_FPS:g} fps (above the codec floor: the pipeline sets the rate); steady window; "
        "CPU = pipeline process",
    ]
    rows = []
    for s in sizes:
        for kind, feed_fps in (("throughput", THROUGHPUT_FEED_FPS), ("unpaced", UNPACED_FEED_FPS)):
            rows += _throughput_rows(results, kind, feed_fps, s, floors[s])
    lines += _table(
        [
            "size",
            "fed fps",
            "in fps",
            "workflow",
            "pipeline",
            "out fps",
            "drop %",
            "p50 ms",
            "max ms",
            "growth ms",
            "CPU %",
            "CPU ms/frame",
            "fps/floor",
            "fps/pytr",
            "cost/floor",
            "cost/pytr",
        ],
        rows,
    )

    lines += [
        "",
        f"2. latency: glass to glass at {LATENCY_FPS:g} fps real time (fed -> decoded from output), "
        "and first output after start",
    ]
    rows = []
    for s in sizes:
        pt = case_median(results, "latency", "pytrickle", "passthrough", s, LATENCY_FPS) or {}
        pts = case_median(results, "startup", "pytrickle", "passthrough", s, LATENCY_FPS) or {}
        for pipeline in ("ours", "pytrickle"):
            m = case_median(results, "latency", pipeline, "passthrough", s, LATENCY_FPS)
            st = case_median(results, "startup", pipeline, "passthrough", s, LATENCY_FPS) or {}
            if not m:
                continue
            ours = pipeline == "ours"
            rows.append(
                [
                    s,
                    pipeline,
                    _fmt(m.get("latency_p50_ms"), 0),
                    _fmt(m.get("latency_p95_ms"), 0),
                    _fmt(m.get("latency_max_ms"), 0),
                    _fmt(m.get("out_fps_mean")),
                    _fmt(m.get("drop_pct")),
                    _fmt(st.get("first_output_s"), 2),
                    _fmt(m.get("engine_latency_p50_ms"), 0),
                    _ratio(m.get("latency_p50_ms"), pt.get("latency_p50_ms")) if ours else "",
                    _ratio(m.get("latency_p95_ms"), pt.get("latency_p95_ms")) if ours else "",
                    _ratio(st.get("first_output_s"), pts.get("first_output_s")) if ours else "",
                ]
            )
    lines += _table(
        [
            "size",
            "pipeline",
            "p50 ms",
            "p95 ms",
            "max ms",
            "out fps",
            "drop %",
            "first out s",
            "engine p50",
            "p50/pytr",
            "p95/pytr",
            "first/pytr",
        ],
        rows,
    )

    lines += [
        "",
        f"2b. overload: one stream at {LATENCY_FPS:g} fps through a workflow slower than that (ComfyUI's "
        "ImageBlur; pytrickle: the same blur in its processor); workflow ms: the engine's time per frame; "
        "b2b fps: ComfyUI running the same nodes back to back, no stream (the goal's yardstick)",
    ]
    rows = []
    for s in sizes:
        ours = case_median(results, "overload", "ours", "blur", s, LATENCY_FPS) or {}
        figures = overload_figures(ours)
        for pipeline in ("ours", "pytrickle"):
            m = case_median(results, "overload", pipeline, "blur", s, LATENCY_FPS)
            if not m:
                continue
            mine = pipeline == "ours"
            rows.append(
                [
                    s,
                    pipeline,
                    _fmt(m.get("out_fps_mean")),
                    _fmt(figures["workflow_ms"]) if mine else "",
                    _fmt(m.get("executor_back_to_back_fps")) if mine else "",
                    _fmt(figures["out_vs_workflow"], 3) if mine else "",
                    _fmt(m.get("drop_pct")),
                    _fmt(m.get("latency_p50_ms"), 0),
                    _fmt(m.get("latency_p95_ms"), 0),
                    _fmt(m.get("latency_growth_ms"), 0),
                    _fmt(m.get("pipeline_cpu_percent"), 0),
                ]
            )
    lines += _table(
        ["size", "pipeline", "out fps", "workflow ms", "b2b fps", "out/b2b", "drop %", "p50 ms", "p95 ms",
         "growth ms", "CPU %"],
        rows,
    )

    lines += [
        "",
        f"3. scaling: concurrent {SCALING_FPS:g} fps streams; CPU % and RSS of the pipeline processes",
    ]
    rows = []
    for s in sizes:
        for n in plan["scaling_streams"]:
            for pipeline in ("ours", "pytrickle"):
                m = case_median(results, "scaling", pipeline, "passthrough", s, SCALING_FPS, n)
                if not m:
                    continue
                rows.append(
                    [
                        s,
                        str(n),
                        pipeline,
                        _fmt(m.get("out_fps_mean")),
                        _fmt(m.get("out_fps_min")),
                        _fmt(m.get("out_fps_total")),
                        _fmt(m.get("drop_pct")),
                        _fmt(m.get("latency_p50_ms"), 0),
                        _fmt(m.get("pipeline_cpu_percent"), 0),
                        _fmt(m.get("pipeline_rss_peak_mib"), 0),
                    ]
                )
    lines += _table(
        ["size", "streams", "pipeline", "fps/stream", "min fps", "total fps", "drop %", "p50 ms", "CPU %",
         "RSS MiB"],
        rows,
    )
    cap = plan.get("pytrickle_max_streams")
    if cap is not None and plan.get("pytrickle") and plan.get("pytrickle_scaling_sizes"):
        lines.append(
            f"   pytrickle ran up to {cap} streams only: one process per stream, more do not fit this machine"
        )

    lines += ["", "4. per-frame breakdown from the engine's counters (ms, mean per frame)"]
    rows = []
    for name, entry in results["cases"].items():
        stages = (entry.get("median") or {}).get("engine_stages_ms")
        if stages:
            rows.append([name, ", ".join(f"{k} {_fmt(v, 2)}" for k, v in stages.items())])
    lines += _table(["case", "stages"], rows) if rows else ["   (the engine reported no stage timings)"]

    lines += ["", "targets (512x512)"]
    lines += target_rows(evaluate_targets(results))
    lines += ["", "goals of issue 16 (passthrough; ratios to the codec floor of the same run)"]
    lines += target_rows(evaluate_goals(results))
    lines += ["", "goals of issue 22 (live under load)"]
    lines += target_rows(evaluate_load_goals(results))
    if plan["repeat"] > 1:
        lines += ["", "goals of issue 22, run by run (each must hold in every run; x = missed in that run)"]
        lines += load_goal_run_rows(load_goals_by_run(results))
    failed = [name for name, entry in results["cases"].items() if entry.get("failed_runs")]
    if failed:
        lines += ["", "cases with failed runs: " + ", ".join(failed)]
    lines += live_control_rows(results.get("live") or {})
    return "\n".join(lines)


def live_control_rows(live: dict[str, Any]) -> list[str]:
    """Live control (issue 11): update -> first changed output frame and the longest output gap around a
    swap, one row per run (``bench_live_update.py``); goal: <= 2 frame intervals."""
    runs = [run for run in live.get("runs", []) if "update_to_change_ms" in run]
    if not runs:
        return []
    lines = ["", "live control: invert <-> passthrough swapped once a second (REST update), 30 fps"]
    rows = [
        [
            run["size"],
            f"{run['changes_seen']}/{run['updates']}",
            _fmt(run["update_to_change_ms"]["p50"]),
            _fmt(run["update_to_change_ms"]["p95"]),
            _fmt(2 * run["frame_interval_ms"]),
            _fmt(run["swap_gap_ms_max"]),
            str(run["frames_out"]),
        ]
        for run in runs
    ]
    return lines + _table(
        ["size", "changes seen", "update->change p50 ms", "p95 ms", "goal ms", "longest gap ms",
         "frames out"],
        rows,
    )
