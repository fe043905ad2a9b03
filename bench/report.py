"""The suite's results as a printed table: figures, ratios to the codec floor and to pytrickle, targets."""

from __future__ import annotations

from typing import Any

from .suite import LATENCY_FPS, SCALING_FPS, THROUGHPUT_FEED_FPS

# The targets (ours, 2 CPU cores, real ComfyUI in the loop).
TARGET_THROUGHPUT_FPS = 90.0
# "latency stays bounded" while fed at 120 fps: it must not grow over the run (the engine drops to the
# newest frames instead of queueing); measured as last-quarter minus first-quarter median latency
TARGET_LATENCY_GROWTH_MS = 250.0
TARGET_LATENCY_P50_MS = 50.0
TARGET_LATENCY_P95_MS = 100.0
TARGET_SCALING_DROP_PCT = 1.0
TARGET_SCALING_STREAMS = 4
TARGET_COST_VS_FLOOR = 1.5
TARGET_FIRST_OUTPUT_S = 1.0


def _case(
    results: dict[str, Any], kind: str, pipeline: str, workflow: str, size: str, fps: float, streams: int = 1
) -> dict[str, Any] | None:
    streams_tag = f"-x{streams}" if streams > 1 else ""
    name = f"{kind}-{pipeline}-{workflow}-{size}-{fps:g}fps{streams_tag}"
    entry = results["cases"].get(name)
    return entry.get("median") if entry else None


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


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with the measured figure and whether it is met (None: not measured)."""
    size = "512x512"
    floor = (results.get("floor", {}).get(size) or {}).get("median") or {}
    thr = _case(results, "throughput", "ours", "passthrough", size, THROUGHPUT_FEED_FPS) or {}
    lat = _case(results, "latency", "ours", "passthrough", size, LATENCY_FPS) or {}
    start = _case(results, "startup", "ours", "passthrough", size, LATENCY_FPS) or {}
    scale = _case(results, "scaling", "ours", "passthrough", size, SCALING_FPS, TARGET_SCALING_STREAMS) or {}

    def check(value: Any, ok: bool) -> bool | None:
        return None if value is None else ok

    fps = thr.get("out_fps_mean")
    growth = thr.get("latency_growth_ms")
    p50, p95 = lat.get("latency_p50_ms"), lat.get("latency_p95_ms")
    drops = scale.get("drop_pct")
    cost = thr.get("pipeline_cpu_ms_per_frame")
    floor_cost = floor.get("cpu_ms_per_frame")
    cost_ratio = cost / floor_cost if cost and floor_cost else None
    first = start.get("first_output_s")
    return [
        {
            "target": f"passthrough 512x512 fed at {THROUGHPUT_FEED_FPS:g} fps: "
            f">= {TARGET_THROUGHPUT_FPS:g} fps out",
            "measured": fps,
            "met": check(fps, (fps or 0) >= TARGET_THROUGHPUT_FPS),
        },
        {
            "target": f"  ... latency bounded: growth over the run <= {TARGET_LATENCY_GROWTH_MS:g} ms",
            "measured": growth,
            "met": check(growth, (growth or 0) <= TARGET_LATENCY_GROWTH_MS),
        },
        {
            "target": f"glass-to-glass p50 <= {TARGET_LATENCY_P50_MS:g} ms at 30 fps 512x512",
            "measured": p50,
            "met": check(p50, (p50 or 0) <= TARGET_LATENCY_P50_MS),
        },
        {
            "target": f"glass-to-glass p95 <= {TARGET_LATENCY_P95_MS:g} ms at 30 fps 512x512",
            "measured": p95,
            "met": check(p95, (p95 or 0) <= TARGET_LATENCY_P95_MS),
        },
        {
            "target": f"{TARGET_SCALING_STREAMS} x 24 fps 512x512 streams: "
            f"<= {TARGET_SCALING_DROP_PCT:g}% dropped",
            "measured": drops,
            "met": check(drops, (drops or 0) <= TARGET_SCALING_DROP_PCT),
        },
        {
            "target": f"per-frame CPU (passthrough) <= {TARGET_COST_VS_FLOOR:g}x codec floor",
            "measured": round(cost_ratio, 2) if cost_ratio else None,
            "met": check(cost_ratio, (cost_ratio or 0) <= TARGET_COST_VS_FLOOR),
        },
        {
            "target": f"first output <= {TARGET_FIRST_OUTPUT_S:g} s after /stream/start (passthrough)",
            "measured": first,
            "met": check(first, (first or 0) <= TARGET_FIRST_OUTPUT_S),
        },
    ]


def render(results: dict[str, Any]) -> str:
    plan = results["plan"]
    lines = [
        f"comfy-trickle benchmark - {results['started']}, {results['machine']['cpus']} CPUs, "
        f"medians of {plan['repeat']} run(s), {results['seconds']:.0f} s in all",
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
        f"1. throughput: one stream fed at {THROUGHPUT_FEED_FPS:g} fps (steady window); "
        "CPU = pipeline process",
    ]
    rows = []
    for s in sizes:
        pt = _case(results, "throughput", "pytrickle", "passthrough", s, THROUGHPUT_FEED_FPS) or {}
        for workflow in ("passthrough", "invert"):
            for pipeline in ("ours", "pytrickle"):
                m = _case(results, "throughput", pipeline, workflow, s, THROUGHPUT_FEED_FPS)
                if not m:
                    continue
                ours = pipeline == "ours"
                rows.append(
                    [
                        s,
                        workflow,
                        pipeline,
                        _fmt(m.get("out_fps_mean")),
                        _fmt(m.get("drop_pct")),
                        _fmt(m.get("latency_p50_ms"), 0),
                        _fmt(m.get("latency_max_ms"), 0),
                        _fmt(m.get("latency_growth_ms"), 0),
                        _fmt(m.get("pipeline_cpu_percent"), 0),
                        _fmt(m.get("pipeline_cpu_ms_per_frame"), 2),
                        _ratio(m.get("out_fps_mean"), floors[s].get("fps")),
                        _ratio(m.get("out_fps_mean"), pt.get("out_fps_mean")) if ours else "",
                        _ratio(m.get("pipeline_cpu_ms_per_frame"), floors[s].get("cpu_ms_per_frame")),
                        _ratio(m.get("pipeline_cpu_ms_per_frame"), pt.get("pipeline_cpu_ms_per_frame"))
                        if ours
                        else "",
                    ]
                )
    lines += _table(
        [
            "size",
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
        pt = _case(results, "latency", "pytrickle", "passthrough", s, LATENCY_FPS) or {}
        pts = _case(results, "startup", "pytrickle", "passthrough", s, LATENCY_FPS) or {}
        for pipeline in ("ours", "pytrickle"):
            m = _case(results, "latency", pipeline, "passthrough", s, LATENCY_FPS)
            st = _case(results, "startup", pipeline, "passthrough", s, LATENCY_FPS) or {}
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
        f"3. scaling: concurrent {SCALING_FPS:g} fps streams; CPU % and RSS of the pipeline processes",
    ]
    rows = []
    for s in sizes:
        for n in plan["scaling_streams"]:
            for pipeline in ("ours", "pytrickle"):
                m = _case(results, "scaling", pipeline, "passthrough", s, SCALING_FPS, n)
                if not m:
                    continue
                rows.append(
                    [
                        s,
                        str(n),
                        pipeline,
                        _fmt(m.get("out_fps_mean")),
                        _fmt(m.get("out_fps_min")),
                        _fmt(m.get("drop_pct")),
                        _fmt(m.get("latency_p50_ms"), 0),
                        _fmt(m.get("pipeline_cpu_percent"), 0),
                        _fmt(m.get("pipeline_rss_peak_mib"), 0),
                    ]
                )
    lines += _table(
        ["size", "streams", "pipeline", "fps/stream", "min fps", "drop %", "p50 ms", "CPU %", "RSS MiB"], rows
    )

    lines += ["", "4. per-frame breakdown from the engine's counters (ms, mean per frame)"]
    rows = []
    for name, entry in results["cases"].items():
        stages = (entry.get("median") or {}).get("engine_stages_ms")
        if stages:
            rows.append([name, ", ".join(f"{k} {_fmt(v, 2)}" for k, v in stages.items())])
    lines += _table(["case", "stages"], rows) if rows else ["   (the engine reported no stage timings)"]

    lines += ["", "targets (512x512)"]
    rows = [
        [t["target"], _fmt(t["measured"], 2), {True: "met", False: "MISSED", None: "not measured"}[t["met"]]]
        for t in evaluate_targets(results)
    ]
    lines += _table(["target", "measured", ""], rows)
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
