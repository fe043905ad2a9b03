"""PNGs of the suite's results, drawn with Pillow (ComfyUI's venv has it; no matplotlib).

``results.png``, four bar panels: output fps when fed at 120 fps (with the codec floor), glass-to-glass
latency p50/p95 at 30 fps, per-stream fps when scaling, and CPU milliseconds per frame against the floor.
``scaling.png``, five line panels over the stream count (1..16): fps per stream (with the 24 fps line),
drop %, p50 latency (log scale), processed frames a second of all streams together and the pipeline's CPU
%, ours and pytrickle as separate series.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from .report import sizes_of
from .suite import LATENCY_FPS, SCALING_FPS, THROUGHPUT_FEED_FPS
from .targets import case_median

Points = list[tuple[int, float | None]]  # (stream count, value or None where not measured)

PANEL_W, PANEL_H = 640, 380
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 60, 20, 40, 70
COLOURS = {
    "ours": (33, 102, 172),
    "ours invert": (103, 169, 207),
    "pytrickle": (214, 96, 77),
    "floor": (120, 120, 120),
    "p50": (33, 102, 172),
    "p95": (146, 197, 222),
    "target": (0, 150, 0),
}

Bars = list[tuple[str, list[tuple[str, float | None]]]]  # groups of (series, value)


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for scale in (0.1, 1, 10, 100, 1000, 10000):
        for step in (1, 2, 2.5, 5):
            if step * scale >= value:
                return float(step * scale)
    return value


def _bar_panel(title: str, unit: str, groups: Bars, targets: list[float] | None = None) -> Image.Image:
    image = Image.new("RGB", (PANEL_W, PANEL_H), "white")
    draw = ImageDraw.Draw(image)
    font = _font()
    draw.text((MARGIN_L, 10), title, fill="black", font=font)
    values = [v for _, series in groups for _, v in series if v is not None] + (targets or [])
    top = _nice_max(max(values, default=1.0) * 1.1)
    x0, y0, x1, y1 = MARGIN_L, MARGIN_T, PANEL_W - MARGIN_R, PANEL_H - MARGIN_B
    draw.line([(x0, y1), (x1, y1)], fill="black")
    draw.line([(x0, y0), (x0, y1)], fill="black")
    for tick in range(5):
        value = top * tick / 4
        y = y1 - (y1 - y0) * tick / 4
        draw.line([(x0 - 4, y), (x0, y)], fill="black")
        draw.text((4, y - 6), f"{value:g}", fill="black", font=font)
    draw.text((4, y0 - 16), unit, fill="black", font=font)
    group_w = (x1 - x0) / max(1, len(groups))
    legend: dict[str, tuple[int, int, int]] = {}
    for g, (label, series) in enumerate(groups):
        bar_w = (group_w * 0.8) / max(1, len(series))
        gx = x0 + g * group_w + group_w * 0.1
        for i, (name, value) in enumerate(series):
            colour = COLOURS.get(name, (90, 90, 90))
            legend[name] = colour
            bx = gx + i * bar_w
            if value is None:
                draw.text((bx + 2, y1 - 14), "n/a", fill="black", font=font)
                continue
            by = y1 - (y1 - y0) * min(value, top) / top
            draw.rectangle([bx, by, bx + bar_w - 3, y1], fill=colour)
            draw.text(
                (bx, by - 12), f"{value:.0f}" if value >= 10 else f"{value:.1f}", fill="black", font=font
            )
        draw.text((gx, y1 + 6), label, fill="black", font=font)
    for target in targets or []:
        y = y1 - (y1 - y0) * min(target, top) / top
        draw.line([(x0, y), (x1, y)], fill=COLOURS["target"], width=1)
        draw.text((x1 - 70, y - 12), f"target {target:g}", fill=COLOURS["target"], font=font)
    lx = x0
    for name, colour in legend.items():
        draw.rectangle([lx, PANEL_H - 24, lx + 10, PANEL_H - 14], fill=colour)
        draw.text((lx + 14, PANEL_H - 26), name, fill="black", font=font)
        lx += 24 + 7 * len(name)
    return image


def render_png(results: dict[str, Any], path: Path) -> None:
    sizes = sizes_of(results)
    floors = {s: (results.get("floor", {}).get(s) or {}).get("median") or {} for s in sizes}

    def get(
        kind: str, pipeline: str, workflow: str, size: str, fps: float, key: str, streams: int = 1
    ) -> Any:
        return (case_median(results, kind, pipeline, workflow, size, fps, streams) or {}).get(key)

    thr = [
        (
            s,
            [
                ("ours", get("throughput", "ours", "passthrough", s, THROUGHPUT_FEED_FPS, "out_fps_mean")),
                ("ours invert", get("throughput", "ours", "invert", s, THROUGHPUT_FEED_FPS, "out_fps_mean")),
                (
                    "pytrickle",
                    get("throughput", "pytrickle", "passthrough", s, THROUGHPUT_FEED_FPS, "out_fps_mean"),
                ),
                ("floor", floors[s].get("fps")),
            ],
        )
        for s in sizes
    ]
    lat = []
    for s in sizes:
        for pipeline in ("ours", "pytrickle"):
            p50 = get("latency", pipeline, "passthrough", s, LATENCY_FPS, "latency_p50_ms")
            p95 = get("latency", pipeline, "passthrough", s, LATENCY_FPS, "latency_p95_ms")
            if p50 is not None or p95 is not None:
                lat.append((f"{s} {pipeline}", [("p50", p50), ("p95", p95)]))
    scaling = []
    for s in sizes:
        for n in results["plan"]["scaling_streams"]:
            series = [
                (p, get("scaling", p, "passthrough", s, SCALING_FPS, "out_fps_mean", n))
                for p in ("ours", "pytrickle")
            ]
            if any(v is not None for _, v in series):
                scaling.append((f"{s} x{n}", series))
    cost = [
        (
            s,
            [
                (
                    "ours",
                    get(
                        "throughput",
                        "ours",
                        "passthrough",
                        s,
                        THROUGHPUT_FEED_FPS,
                        "pipeline_cpu_ms_per_frame",
                    ),
                ),
                (
                    "pytrickle",
                    get(
                        "throughput",
                        "pytrickle",
                        "passthrough",
                        s,
                        THROUGHPUT_FEED_FPS,
                        "pipeline_cpu_ms_per_frame",
                    ),
                ),
                ("floor", floors[s].get("cpu_ms_per_frame")),
            ],
        )
        for s in sizes
    ]
    panels = [
        _bar_panel(f"1. output fps, one stream fed at {THROUGHPUT_FEED_FPS:g} fps", "fps", thr, [90.0]),
        _bar_panel(f"2. glass-to-glass latency at {LATENCY_FPS:g} fps", "ms", lat, [50.0, 100.0]),
        _bar_panel(
            f"3. fps per stream, concurrent {SCALING_FPS:g} fps streams", "fps", scaling, [SCALING_FPS]
        ),
        _bar_panel("5. CPU ms per frame (passthrough, fed at 120 fps) vs codec floor", "ms", cost),
    ]
    _save_page(
        panels,
        f"comfy-trickle benchmark {results['started']} (medians of {results['plan']['repeat']} runs)",
        path,
    )


SERIES_COLOURS = [COLOURS["ours"], COLOURS["pytrickle"], COLOURS["ours invert"], (244, 165, 130)]


def _log_range(values: list[float]) -> tuple[float, float]:
    positive = [v for v in values if v > 0] or [1.0]
    return 10 ** math.floor(math.log10(min(positive))), 10 ** math.ceil(math.log10(max(positive)) + 1e-9)


def _line_panel(
    title: str,
    unit: str,
    series: dict[str, Points],
    x_max: int,
    lines: list[tuple[str, float]] | None = None,
    log: bool = False,
) -> Image.Image:
    """Values over the stream count; a missing point breaks its line and shows as "n/a" on the axis."""
    image = Image.new("RGB", (PANEL_W, PANEL_H), "white")
    draw = ImageDraw.Draw(image)
    font = _font()
    draw.text((MARGIN_L, 10), title, fill="black", font=font)
    values = [v for points in series.values() for _, v in points if v is not None]
    values += [v for _, v in lines or []]
    x0, y0, x1, y1 = MARGIN_L, MARGIN_T, PANEL_W - MARGIN_R, PANEL_H - MARGIN_B
    if log:
        low, high = _log_range(values)
        ticks = [low * 10**k for k in range(round(math.log10(high / low)) + 1)]

        def y_of(value: float) -> float:
            clipped = min(max(value, low), high)
            return y1 - (y1 - y0) * math.log10(clipped / low) / math.log10(high / low)
    else:
        high = _nice_max(max(values, default=1.0) * 1.1)
        ticks = [high * k / 4 for k in range(5)]

        def y_of(value: float) -> float:
            return y1 - (y1 - y0) * min(max(value, 0.0), high) / high

    def x_of(streams: int) -> float:  # (room on the right for the last point's value)
        return x0 + (x1 - x0 - 40) * streams / max(1, x_max)

    draw.line([(x0, y1), (x1, y1)], fill="black")
    draw.line([(x0, y0), (x0, y1)], fill="black")
    for tick in ticks:
        y = y_of(tick)
        draw.line([(x0 - 4, y), (x0, y)], fill="black")
        draw.text((4, y - 6), f"{tick:g}", fill="black", font=font)
    draw.text((4, y0 - 16), unit, fill="black", font=font)
    counts = sorted({n for points in series.values() for n, _ in points})
    for n in counts:
        draw.line([(x_of(n), y1), (x_of(n), y1 + 4)], fill="black")
        draw.text((x_of(n) - 4, y1 + 6), str(n), fill="black", font=font)
    draw.text((x1 - 40, y1 + 20), "streams", fill="black", font=font)
    for label, value in lines or []:
        y = y_of(value)
        draw.line([(x0, y), (x1, y)], fill=COLOURS["target"], width=1)
        draw.text((x0 + 4, y - 12), label, fill=COLOURS["target"], font=font)  # left: clear of the points
    lx = x0
    for k, (name, points) in enumerate(series.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        previous: tuple[float, float] | None = None
        for n, value in sorted(points):
            if value is None:
                previous = None
                draw.text((x_of(n) - 8, y1 - 14 - 12 * k), "n/a", fill=colour, font=font)
                continue
            point = (x_of(n), y_of(value))
            if previous is not None:
                draw.line([previous, point], fill=colour, width=2)
            draw.ellipse([point[0] - 3, point[1] - 3, point[0] + 3, point[1] + 3], fill=colour)
            draw.text((point[0] + 4, point[1] - 12), f"{value:.0f}" if value >= 10 else f"{value:.1f}",
                      fill=colour, font=font)  # fmt: skip
            previous = point
        draw.rectangle([lx, PANEL_H - 24, lx + 10, PANEL_H - 14], fill=colour)
        draw.text((lx + 14, PANEL_H - 26), name, fill="black", font=font)
        lx += 24 + 7 * len(name)
    return image


def scaling_series(results: dict[str, Any], key: str) -> dict[str, Points]:
    """``key`` of every scaling case, one series per pipeline (and size, when several were run)."""
    sizes = sizes_of(results)
    counts = results["plan"]["scaling_streams"]
    series: dict[str, Points] = {}
    for size in sizes:
        for pipeline in ("ours", "pytrickle"):
            case = ("scaling", pipeline, "passthrough", size, SCALING_FPS)
            points = [
                (n, (case_median(results, *case, n) or {}).get(key))
                for n in counts
            ]
            if any(v is not None for _, v in points):
                series[pipeline if len(sizes) == 1 else f"{pipeline} {size}"] = points
    return series


def render_scaling_png(results: dict[str, Any], path: Path) -> None:
    """``scaling.png``: the scaling case's four figures over the stream count."""
    counts = results["plan"]["scaling_streams"] or [1]
    x_max = max(counts)
    cores = 100.0 * (results.get("machine", {}).get("cpus") or 1)
    panels = [
        _line_panel(
            f"fps per stream (fed at {SCALING_FPS:g} fps each)",
            "fps",
            scaling_series(results, "out_fps_mean"),
            x_max,
            [(f"{SCALING_FPS:g} fps", SCALING_FPS)],
        ),
        _line_panel(
            "dropped frames, all streams", "%", scaling_series(results, "drop_pct"), x_max, [("1 %", 1.0)]
        ),
        _line_panel(
            "glass-to-glass p50 (log scale)",
            "ms",
            scaling_series(results, "latency_p50_ms"),
            x_max,
            [("100 ms", 100.0)],
            log=True,
        ),
        _line_panel(
            "processed frames a second, all streams together",
            "fps",
            scaling_series(results, "out_fps_total"),
            x_max,
            [],
        ),
        _line_panel(
            "CPU of the pipeline processes (100 % = one core)",
            "%",
            scaling_series(results, "pipeline_cpu_percent"),
            x_max,
            [(f"all {cores / 100:g} cores", cores)],
        ),
    ]
    _save_page(
        panels,
        f"comfy-trickle scaling: concurrent {SCALING_FPS:g} fps passthrough streams, {results['started']} "
        f"(medians of {results['plan']['repeat']} runs)",
        path,
    )


def _save_page(panels: list[Image.Image], title: str, path: Path) -> None:
    """The panels, two a row, under a title line, written to ``path``."""
    rows = (len(panels) + 1) // 2
    page = Image.new("RGB", (PANEL_W * 2, PANEL_H * rows + 30), "white")
    ImageDraw.Draw(page).text((10, 8), title, fill="black", font=_font())
    for i, panel in enumerate(panels):
        page.paste(panel, ((i % 2) * PANEL_W, 30 + (i // 2) * PANEL_H))
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path)
