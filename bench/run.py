"""comfy-trickle's benchmark suite: throughput, latency, scaling and per-frame cost through real ComfyUI,
side by side with the codec floor and pytrickle 0.1.6.

    source scripts/env.sh
    $COMFY_TRICKLE_PY bench/run.py              # full suite: 512x512 and 1280x720, 3 repeats (~35 min)
    $COMFY_TRICKLE_PY bench/run.py --quick      # smoke run: 512x512, short cases, 1 repeat (~2 min)

Prints a table and writes ``artifacts/bench/results.json`` (plus a timestamped copy),
``artifacts/bench/results.png`` and ``artifacts/bench/scaling.png``. Everything runs on 127.0.0.1: a dev
relay process, a real ComfyUI with the pack, pytrickle peers from ``$PYTRICKLE_PY``. See bench/README.md
for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _ensure_importable() -> None:
    """Make the checkout importable as ``comfy_trickle`` (as scripts/env.sh does) for us and our children."""
    try:
        import comfy_trickle  # noqa: F401, PLC0415
    except ImportError:
        cache = Path(os.environ.get("COMFY_TRICKLE_CACHE", Path.home() / ".cache" / "comfy-trickle"))
        # the folder scripts/env.sh uses for this checkout: one per checkout path
        root = cache / "import-root" / hashlib.sha1(str(REPO_ROOT).encode()).hexdigest()[:12]  # noqa: S324
        root.mkdir(parents=True, exist_ok=True)
        link = root / "comfy_trickle"
        if not link.exists():
            link.symlink_to(REPO_ROOT, target_is_directory=True)
        sys.path.insert(0, str(root))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (512x512, 1 repeat)")
    parser.add_argument("--repeat", type=int, help="runs per case (medians are reported)")
    parser.add_argument("--sizes", help="comma-separated WxH list, e.g. 512x512,1280x720")
    parser.add_argument(
        "--parts",
        help="comma-separated subset of throughput,unpaced,latency,overload,startup,scaling,floor,live",
    )
    parser.add_argument("--scaling", help="comma-separated stream counts, e.g. 1,2,4,8,12,16")
    parser.add_argument(
        "--pytrickle-max-streams", type=int, help="run pytrickle's scaling cases up to this many streams only"
    )
    parser.add_argument("--seconds", type=float, help="seconds per case (all kinds)")
    parser.add_argument("--frames-per-prompt", type=int, default=1,
                        help="params.max_frames_per_prompt of our streams (default 1)")
    parser.add_argument("--no-pytrickle", action="store_true", help="skip the pytrickle side by side")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "artifacts" / "bench", help="output folder")
    default_cache = REPO_ROOT / "artifacts" / "bench" / "cache"
    parser.add_argument("--cache", type=Path, default=default_cache, help="encoded sources cache")
    parser.add_argument("--comfyui-url", help="use this running ComfyUI with the pack (default: start one)")
    parser.add_argument("--comfyui-pid", type=int, help="its process id, for CPU and RSS")
    parser.add_argument("--render", type=Path, help="only print/plot an earlier results.json (no runs)")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)  # fmt: skip
    _ensure_importable()
    from comfy_trickle.bench.plot import render_png, render_scaling_png  # noqa: PLC0415 - after the import root
    from comfy_trickle.bench.report import render  # noqa: PLC0415
    from comfy_trickle.bench.suite import SuitePlan, run_suite, summarize_cases  # noqa: PLC0415

    plan = SuitePlan.quick() if args.quick else SuitePlan.full()
    if args.repeat:
        plan.repeat = args.repeat
    if args.sizes:
        plan.sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]  # type: ignore[misc]
    if args.parts:
        plan.parts = {p.strip() for p in args.parts.split(",")} & set(SuitePlan.PARTS)
    if args.scaling:
        plan.scaling_streams = [int(n) for n in args.scaling.split(",")]
    if args.seconds:
        plan.seconds = dict.fromkeys(plan.seconds, args.seconds)
    if args.no_pytrickle:
        plan.pytrickle = False
    plan.frames_per_prompt = args.frames_per_prompt
    if args.pytrickle_max_streams is not None:
        plan.pytrickle_max_streams = args.pytrickle_max_streams

    if args.render:
        results = json.loads(args.render.read_text())
        summarize_cases(results["cases"])
        render_png(results, args.render.with_suffix(".png"))
        render_scaling_png(results, args.render.with_name("scaling.png"))
        print(render(results))
        return 0
    if args.comfyui_url and not args.comfyui_pid:
        raise SystemExit("--comfyui-url needs --comfyui-pid (CPU and RSS are read from /proc)")
    existing = (args.comfyui_url, args.comfyui_pid) if args.comfyui_url else None
    results = asyncio.run(run_suite(plan, args.out, cache_dir=args.cache, comfyui=existing))
    results["command"] = " ".join([Path(sys.executable).name, "bench/run.py", *(argv or sys.argv[1:])])
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1)
    (args.out / "results.json").write_text(text)
    (args.out / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(text)
    render_png(results, args.out / "results.png")
    render_scaling_png(results, args.out / "scaling.png")
    table = render(results)
    (args.out / "results.txt").write_text(table + "\n")
    print(table)
    written = [args.out / name for name in ("results.json", "results.png", "scaling.png", "results.txt")]
    print(f"\nwritten: {', '.join(str(path) for path in written)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
