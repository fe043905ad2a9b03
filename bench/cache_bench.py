"""Cache and model benchmarks (issue 15 §3, §5 and issue 13 §9); not CI. Prints a table, writes JSON.

    $COMFY_TRICKLE_PY bench/cache_bench.py scaling [--streams 1,2,4] [--pack-dir DIR]
    $COMFY_TRICKLE_PY bench/cache_bench.py soak [--frames 10000] [--cache-args=--cache-ram]
    $COMFY_TRICKLE_PY bench/cache_bench.py floor [--frames 120] [--size 256] [--rounds 3] [--pack-dir DIR]

- scaling: one simple (invert) stream's ``executor_queue`` and ``workflow`` stage p50 while 0..N-1 other
  streams run a workflow with a 40-node constant branch, 64 per-frame nodes and 300 nodes no output
  needs. ``--pack-dir`` runs another checkout of the pack (e.g. ``git archive main`` unpacked) to
  compare before/after.
- soak: 2 model streams (TAESD and the compact upscaler, 64x64) for ``--frames`` frames each under a cache
  mode, sampling ComfyUI's RSS and its cache bookkeeping (``tests/custom_nodes/cache_probe``) along the way.
- floor: each model workflow's fps through a stream versus ComfyUI executing the same workflow
  back-to-back on the same frames with no streaming (every prompt queued at once, LoadImage of the
  source's frames as PNG instead of the live input, PreviewAny as the output): the ratio is the
  streaming efficiency, the median of ``--rounds`` stream/floor alternations (the upscaler gets 8x
  ``--frames``, as it runs about 10x faster). Also the execution-only rate (each prompt's start ->
  success summed) and the stream's stage p50 and mean.

Models are the tiny random-weight ones of ``devtools/tiny_models.py`` (real formats, no download).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from comfy_trickle.devtools import comfyui_server
from comfy_trickle.devtools.stream_harness import INVERT, StreamAPI, publish_synthetic
from comfy_trickle.devtools.tiny_models import (
    big_workflow,
    install_models,
    make_tiny_models,
    taesd_workflow,
    upscale_workflow,
)
from comfy_trickle.media.synthetic import make_test_frame
from comfy_trickle.trickle.relay_server import serve_relay
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
logger = logging.getLogger("cache_bench")
ARTIFACTS = REPO / "artifacts" / "bench"
PROBE_PACK = REPO / "tests" / "custom_nodes" / "cache_probe"  # also loaded by every test ComfyUI


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def start(base: Path, extra_args: list[str], env: dict[str, str] | None = None, pack_dir: Path | None = None):
    if pack_dir is not None:  # run another checkout of the pack (before/after comparisons)
        comfyui_server.PACK_DIR = pack_dir
    models = make_tiny_models(base / "made-models")
    server = comfyui_server.start_comfyui(
        base / "comfyui", base / "comfyui.log", extra_args=extra_args, env=env, node_packs=[PROBE_PACK]
    )
    install_models(models, server.base_directory)
    return server


def scaling_workflow() -> dict[str, Any]:
    return big_workflow(nodes=450, leaves=32, constants=40)


async def start_streams(api, relay, workflows: dict[str, dict], size: int, **params: Any) -> None:
    for stream_id, workflow in workflows.items():
        relay.relay.create_channel(f"{stream_id}-in", "video/MP2T")
        relay.relay.create_channel(f"{stream_id}-out", "video/MP2T")
        status, body = await api.start(
            stream_id, relay.channel_url(f"{stream_id}-in"), relay.channel_url(f"{stream_id}-out"), workflow,
            size, size, max_backlog_s=120.0, **params,
        )  # fmt: skip
        if status != 200:
            raise RuntimeError(f"start {stream_id}: {status} {body}")


async def feed_streams(api, relay, stream_ids, frames: int, fps: float, size: int) -> dict:
    """Publish ``frames`` frames to each started stream (paced at ``fps``), return final statuses."""
    await asyncio.gather(
        *(
            publish_synthetic(relay.channel_url(f"{stream_id}-in"), frames, width=size, height=size, fps=fps)
            for stream_id in stream_ids
        )
    )
    return {s: await api.wait_state(s, {"completed", "error", "stopped"}, timeout=600) for s in stream_ids}


async def run_streams(api, relay, workflows: dict[str, dict], frames: int, fps: float, size: int) -> dict:
    await start_streams(api, relay, workflows, size)
    return await feed_streams(api, relay, list(workflows), frames, fps, size)


async def scaling(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start(Path(tmp), [], pack_dir=args.pack_dir)
        api = StreamAPI(server.base_url)
        try:
            async with serve_relay(autocreate=True) as relay:
                for count in args.streams:
                    tag = time.monotonic_ns() % 10**6
                    workflows = {f"simple-{tag}": INVERT}
                    workflows.update({f"other{i}-{tag}": scaling_workflow() for i in range(count - 1)})
                    finals = await run_streams(api, relay, workflows, args.frames, 30.0, 64)
                    simple = finals[f"simple-{tag}"]["counters"]
                    rows.append({
                        "streams": count,
                        "executor_queue_p50_ms": simple["stage_ms"]["executor_queue"]["p50"],
                        "workflow_p50_ms": simple["stage_ms"]["workflow"]["p50"],
                        "simple_frames_out": simple["frames_out"],
                    })  # fmt: skip
                    print(rows[-1], flush=True)
        finally:
            await api.close()
            server.stop()
    return {"part": "scaling", "pack_dir": str(args.pack_dir or REPO), "rows": rows}


class ProcessedGate:
    """Closed-loop pacing for the soak: a source may run at most ``ahead`` frames ahead of the slowest
    stream's handled frames (out or dropped; while a stream warms up its frames go out as placeholders),
    so a loaded machine slows the source instead of dropping frames at the hand-off (the soak is about
    every frame going through the cache)."""

    def __init__(self, api, stream_ids: list[str], ahead: int) -> None:
        self._api, self._stream_ids, self._ahead = api, stream_ids, ahead
        self.slowest = 0

    async def wait_for(self, frame_index: int) -> None:
        while frame_index - self.slowest > self._ahead:
            counters = [(await self._api.status(s))["counters"] for s in self._stream_ids]
            self.slowest = min(c["frames_out"] + c["frames_dropped"] for c in counters)
            if frame_index - self.slowest > self._ahead:
                await asyncio.sleep(0.1)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start(Path(tmp), args.cache_args.split())
        api = StreamAPI(server.base_url)
        try:
            async with serve_relay(autocreate=True) as relay:
                workflows = {"soak-taesd": taesd_workflow(), "soak-upscale": upscale_workflow()}
                await start_streams(api, relay, workflows, 64)
                gate = ProcessedGate(api, list(workflows), ahead=int(args.fps * 3))
                run = asyncio.create_task(gated_run(api, relay, list(workflows), args.frames, args.fps, gate))
                began = time.monotonic()
                while not run.done():
                    status, probe = await api.call("GET", "/cache-probe")
                    frames = [(await api.status(s))["counters"]["frames_processed"] for s in workflows]
                    samples.append({
                        "t_s": round(time.monotonic() - began, 1), "frames": frames,
                        "rss_mb": round(rss_mb(server.process.pid), 1), "caches": probe,
                    })  # fmt: skip
                    print(samples[-1], flush=True)
                    await asyncio.wait({run}, timeout=args.sample_s)
                finals = run.result()
        finally:
            await api.close()
            server.stop()
    summary = soak_summary(samples)
    print(json.dumps(summary), flush=True)
    result = {"part": "soak", "cache_args": args.cache_args, "summary": summary, "samples": samples}
    return {**result, "finals": finals}


def soak_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """First, last and max of RSS and of the output cache's entries and bookkeeping over the soak."""
    series = {"rss_mb": [sample["rss_mb"] for sample in samples]}
    for name in ("entries", "used_generation", "timestamps"):
        series[name] = [sample["caches"].get("outputs", {}).get(name, 0) for sample in samples]
    summary: dict[str, Any] = {"frames_processed": samples[-1]["frames"] if samples else None}
    for name, values in series.items():
        if values:
            summary[name] = {"first": values[0], "last": values[-1], "max": max(values)}
    return summary


async def gated_run(api, relay, stream_ids: list[str], frames: int, fps: float, gate: ProcessedGate) -> dict:
    await asyncio.gather(
        *(
            publish_synthetic(
                relay.channel_url(f"{s}-in"), frames, width=64, height=64, fps=fps,
                before_segment=gate.wait_for,
            )
            for s in stream_ids
        )
    )
    return {s: await api.wait_state(s, {"completed", "error", "stopped"}, timeout=600) for s in stream_ids}


async def floor(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start(Path(tmp), [], pack_dir=args.pack_dir)
        api = StreamAPI(server.base_url)
        # (the upscaler runs about 10x faster than TAESD: more frames give it as long a measurement)
        cases = (("taesd", taesd_workflow(), args.frames), ("upscale", upscale_workflow(), args.frames * 8))
        source = Path(server.base_directory) / "input"
        frame_names = write_source_frames(source, max(frames for _, _, frames in cases), args.size)
        try:
            async with serve_relay(autocreate=True) as relay:
                for name, workflow, frames in cases:
                    names = frame_names[:frames]
                    rows.append(await floor_rounds(server, api, relay, name, workflow, names, args))
                    print(rows[-1], flush=True)
        finally:
            await api.close()
            server.stop()
    return {"part": "floor", "pack_dir": str(args.pack_dir or REPO), "rows": rows}


async def floor_rounds(server, api, relay, name: str, workflow: dict, frame_names: list[str], args) -> dict:
    """``args.rounds`` alternations of the stream and the executor floor on the same frames: the model's
    speed on this machine drifts between runs by up to 20 %, so each ratio compares neighbours in time;
    the row's ratio is their median."""
    frames = len(frame_names)
    rounds = []
    for _ in range(args.rounds):
        stream_fps, stages = await stream_rate(api, relay, name, workflow, frames, args.size,
                                               max_frames_per_prompt=args.frames_per_prompt)
        floor = executor_rate(server, workflow, frame_names)
        rounds.append({
            "stream_fps": round(stream_fps, 2), "executor_floor_fps": round(floor["back_to_back_fps"], 2),
            "ratio": round(stream_fps / floor["back_to_back_fps"], 3),
            "execute_only_fps": round(floor["execute_only_fps"], 2), "stream_stage_ms": stages,
        })  # fmt: skip
    ratios = sorted(entry["ratio"] for entry in rounds)
    return {
        "workflow": name, "size": args.size, "frames": frames, "ratio": ratios[len(ratios) // 2],
        "stream_fps": [entry["stream_fps"] for entry in rounds],
        "executor_floor_fps": [entry["executor_floor_fps"] for entry in rounds],
        "rounds": rounds, "loadavg": round(os.getloadavg()[0], 2),
    }  # fmt: skip


# the stream's rate is the slope of its processed-frame count between two samples, exact at the moment each
# is read (so the sampling interval costs no precision); sampled slowly, because each status request takes
# the GIL from the model's thread (50 samples a second cost a TAESD stream about 5 % of its rate)
RATE_SAMPLE_S = 0.25


async def stream_rate(
    api, relay, name: str, workflow: dict, frames: int, size: int, **params: Any
) -> tuple[float, dict]:
    """Frames processed per second while the stream had work (input published far faster than it runs),
    and the stream's per-stage p50 and mean (ms), to see where a frame's time goes."""
    # a short stream first: model loads and torch start-up out of the way (a slow first frame would make
    # the measured stream cover its first frames with warm-up placeholders, which never reach the models)
    warm_id = f"warm-{name}-{time.monotonic_ns() % 10**6}"
    await run_streams(api, relay, {warm_id: workflow}, 5, 30.0, size)
    stream_id = f"floor-{name}-{time.monotonic_ns() % 10**6}"
    await start_streams(api, relay, {stream_id: workflow}, size, **params)
    run = asyncio.create_task(feed_streams(api, relay, [stream_id], frames, 240.0, size))
    samples = []  # (time, frames processed) while 0 < processed < frames
    while not run.done():
        processed = (await api.status(stream_id))["counters"]["frames_processed"]
        if processed >= frames:
            break
        if processed > 0:
            samples.append((time.monotonic(), processed))
        await asyncio.sleep(RATE_SAMPLE_S)
    final = (await run)[stream_id]["counters"]
    stages = {
        stage: {"p50": (value or {}).get("p50"), "mean": (value or {}).get("mean")}
        for stage, value in final["stage_ms"].items()
    }
    if len(samples) < 2:
        raise RuntimeError(f"{name}: too few rate samples ({len(samples)}): use more --frames")
    (first_at, first_count), (last_at, last_count) = samples[0], samples[-1]
    return (last_count - first_count) / (last_at - first_at), stages


def write_source_frames(input_dir: Path, frames: int, size: int) -> list[str]:
    """The synthetic source's frames as PNG files in ComfyUI's input folder: the floor runs on the same
    pictures as the stream (a flat colour instead ran TAESD faster: content changes conv speed on CPU)."""
    input_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(frames):
        name = f"floor-frame-{index:05d}.png"
        Image.fromarray(make_test_frame(index, size, size)).save(input_dir / name)
        names.append(name)
    return names


def executor_rate(server, workflow: dict, frame_names: list[str]) -> dict[str, float]:
    """The same workflow with ``LoadImage`` of the stream's frames in place of the live input and
    ``PreviewAny`` as the output, every prompt queued at once (back-to-back, as ComfyUI runs a batch of
    prompts): frames per second from the first prompt's ``execution_start`` to the last one's
    ``execution_success`` (ComfyUI's own history timestamps), and of the execution time alone (the sum of
    each prompt's start -> success: no worker loop, queue or history work between prompts)."""
    prompt = json.loads(json.dumps(workflow))
    prompt["1"] = {"class_type": "LoadImage", "inputs": {"image": frame_names[0]}}
    image = prompt["3"]["inputs"]["images"]
    prompt["3"] = {"class_type": "PreviewAny", "inputs": {"source": image}}
    server.wait_for_history(server.queue_prompt(prompt), 120)  # warm: models loaded, like the stream's
    prompt_ids = []
    for name in frame_names:
        prompt["1"]["inputs"]["image"] = name
        prompt_ids.append(server.queue_prompt(prompt))
    posted_ms = time.time() * 1000.0  # ComfyUI's history timestamps are time.time() in ms
    stamps = [dict(server.wait_for_history(prompt_id, 600)["status"]["messages"]) for prompt_id in prompt_ids]
    runs = [(s["execution_start"]["timestamp"], s["execution_success"]["timestamp"]) for s in stamps]
    # only prompts started once every prompt was queued: validating a POST /prompt takes the GIL from
    # the executor (queueing 1200 prompts cost the upscaler two thirds of its rate while it lasted)
    settled = [run for run in runs if run[0] >= posted_ms]
    if len(settled) < len(runs) // 2:
        raise RuntimeError(f"queueing outlasted half of the floor run ({len(settled)}/{len(runs)})")
    executing_ms = sum(end - begin for begin, end in settled)
    return {
        "back_to_back_fps": len(settled) / ((max(end for _, end in settled) - settled[0][0]) / 1000.0),
        "execute_only_fps": len(settled) / (executing_ms / 1000.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("scaling", "soak", "floor"))
    parser.add_argument("--streams", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4])
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--fps", type=float, default=60.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--cache-args", default="--cache-ram")
    parser.add_argument("--pack-dir", type=Path, default=None)
    parser.add_argument("--frames-per-prompt", type=int, default=1,
                        help="floor: the stream's params.max_frames_per_prompt")
    parser.add_argument("--rounds", type=int, default=3, help="floor: stream/floor alternations")
    args = parser.parse_args()
    args.frames = args.frames or {"scaling": 240, "soak": 10000, "floor": 120}[args.part]
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run({"scaling": scaling, "soak": soak, "floor": floor}[args.part](args))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / f"cache_{args.part}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
