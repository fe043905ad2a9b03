"""The systems under test, behind one small interface: ours (real ComfyUI) and pytrickle's passthrough.

A pipeline turns one input channel into one output channel per stream; the benchmark case feeds the input
and reads the output, so both pipelines are measured by exactly the same instrument.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PYTRICKLE_PEER = BENCH_DIR / "peers" / "pytrickle_passthrough.py"
EXAMPLE_WORKFLOWS = REPO_ROOT / "example_workflows" / "api"

# API-format workflows; "invert" is the cheap one-node workflow (one ImageInvert between input and output).
WORKFLOWS: dict[str, dict[str, Any]] = {
    "passthrough": {
        "1": {"class_type": "TrickleInput", "inputs": {}},
        "2": {"class_type": "TrickleOutput", "inputs": {"images": ["1", 0]}},
    },
    "invert": {
        "1": {"class_type": "TrickleInput", "inputs": {}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "TrickleOutput", "inputs": {"images": ["2", 0]}},
    },
    # slower than the frame rate (the overload case): ComfyUI's Gaussian blur, about 60-110 ms per 512x512
    # frame on the 2-core machine, as slow as a diffusion model on most GPUs
    "blur": {
        "1": {"class_type": "TrickleInput", "inputs": {}},
        "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 12, "sigma": 0.25}},
        "3": {"class_type": "TrickleOutput", "inputs": {"images": ["2", 0]}},
    },
}
# what the pytrickle peer can run: the same blur as ComfyUI's ImageBlur (bench/peers/pytrickle_passthrough.py)
PYTRICKLE_WORKFLOWS = ("passthrough", "blur")


class PipelineError(RuntimeError):
    """The pipeline refused or failed to start a stream."""


class OursPipeline:
    """comfy-trickle inside a running ComfyUI (``devtools/comfyui_server.py``'s ``ComfyUIServer``)."""

    name = "ours"

    def __init__(self, base_url: str, pid: int, frames_per_prompt: int = 1) -> None:
        self.base_url = base_url.rstrip("/")
        self.pid = pid
        self.frames_per_prompt = frames_per_prompt  # params.max_frames_per_prompt (streams.pump)

    def pids(self) -> dict[str, int]:
        return {"comfyui": self.pid}

    async def start_stream(
        self,
        session: aiohttp.ClientSession,
        stream_id: str,
        urls: dict[str, str],
        workflow: str,
        width: int,
        height: int,
        fps: float,
    ) -> float:
        """POST /stream/start; returns the monotonic time the request was sent."""
        body = {
            "gateway_request_id": stream_id,
            "subscribe_url": urls["in"],
            "publish_url": urls["out"],
            "control_url": urls["control"],
            "events_url": urls["events"],
            "params": {"width": width, "height": height, "prompt": WORKFLOWS[workflow]},
        }
        if self.frames_per_prompt > 1:
            body["params"]["max_frames_per_prompt"] = self.frames_per_prompt
        sent = time.monotonic()
        async with session.post(f"{self.base_url}/stream/start", json=body) as response:
            answer = await response.text()
            if response.status != 200:
                raise PipelineError(f"/stream/start answered {response.status}: {answer}")
        return sent

    async def wait_ready(self, stream_id: str, timeout_s: float = 10.0) -> None:
        return None  # /stream/start answers once the session runs

    async def status(self, session: aiohttp.ClientSession, stream_id: str) -> dict[str, Any] | None:
        async with session.get(f"{self.base_url}/stream/{stream_id}/status") as response:
            return await response.json() if response.status == 200 else None

    async def stop_stream(self, session: aiohttp.ClientSession, stream_id: str) -> dict[str, Any]:
        """POST /stream/{id}/stop; returns the final status object (with the engine's counters)."""
        async with session.post(f"{self.base_url}/stream/{stream_id}/stop") as response:
            try:
                return dict(await response.json())
            except (aiohttp.ContentTypeError, ValueError):
                return {"error": f"stop answered {response.status}"}

    async def back_to_back_fps(
        self, session: aiohttp.ClientSession, workflow: str, width: int, height: int, prompts: int = 24
    ) -> float | None:
        """Frames a second ComfyUI's executor gives ``workflow``'s own nodes run back to back, no stream
        in the way: ``prompts`` prompts queued at once, each starting from a fresh ``EmptyImage`` of the
        case's size (its own color, so nothing comes from the cache) where ``TrickleInput`` was and ending in
        ``GetImageSize -> PreviewAny`` where ``TrickleOutput`` was; from the first prompt's start to the
        last one's end, by ComfyUI's own timestamps. None if a prompt failed."""
        client_id = f"bench-back-to-back-{time.monotonic_ns()}"
        prompt_ids = []
        for index in range(prompts):
            prompt = _standalone_prompt(WORKFLOWS[workflow], width, height, color=index + 1)
            body = {"prompt": prompt, "client_id": client_id}
            async with session.post(f"{self.base_url}/prompt", json=body) as response:
                answer = await response.json()
                if response.status != 200:
                    raise PipelineError(f"/prompt answered {response.status}: {answer}")
                prompt_ids.append(answer["prompt_id"])
        entries = [await self._history_entry(session, prompt_id) for prompt_id in prompt_ids]
        if any(entry is None or entry["status"]["status_str"] != "success" for entry in entries):
            return None
        stamps = {event: [data["timestamp"] for e in entries for event_name, data in e["status"]["messages"]
                          if event_name == event]
                  for event in ("execution_start", "execution_success")}  # fmt: skip
        seconds = (max(stamps["execution_success"]) - min(stamps["execution_start"])) / 1000.0
        return round(prompts / seconds, 2) if seconds > 0 else None

    async def _history_entry(
        self, session: aiohttp.ClientSession, prompt_id: str, timeout_s: float = 120.0
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            async with session.get(f"{self.base_url}/history/{prompt_id}") as response:
                entry = (await response.json()).get(prompt_id)
            if entry is not None:
                return entry
            await asyncio.sleep(0.1)
        return None

    async def close(self) -> None:
        return None


def _standalone_prompt(workflow: dict[str, Any], width: int, height: int, color: int) -> dict[str, Any]:
    """``workflow`` without the stream: ``EmptyImage`` for its ``TrickleInput``, ``GetImageSize ->
    PreviewAny`` for its ``TrickleOutput``."""
    prompt: dict[str, Any] = {}
    for node_id, node in workflow.items():
        if node["class_type"] == "TrickleInput":
            prompt[node_id] = {"class_type": "EmptyImage",
                               "inputs": {"width": width, "height": height, "batch_size": 1, "color": color}}
        elif node["class_type"] == "TrickleOutput":
            prompt[node_id] = {"class_type": "GetImageSize", "inputs": {"image": node["inputs"]["images"]}}
            prompt[f"{node_id}-preview"] = {"class_type": "PreviewAny", "inputs": {"source": [node_id, 0]}}
        else:
            prompt[node_id] = json.loads(json.dumps(node))
    return prompt  # fmt: skip


class PytricklePipeline:
    """One pytrickle 0.1.6 passthrough process per stream (``bench/peers/pytrickle_passthrough.py``)."""

    name = "pytrickle"

    def __init__(self, python: str, work_dir: Path, max_seconds: float) -> None:
        self.python = python
        self.work_dir = work_dir
        self.max_seconds = max_seconds
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stats_files: dict[str, Path] = {}
        self._logs: dict[str, Any] = {}

    def pids(self) -> dict[str, int]:
        return {f"pytrickle:{sid}": proc.pid for sid, proc in self._procs.items()}

    async def start_stream(
        self,
        session: aiohttp.ClientSession,
        stream_id: str,
        urls: dict[str, str],
        workflow: str,
        width: int,
        height: int,
        fps: float,
    ) -> float:
        if workflow not in PYTRICKLE_WORKFLOWS:
            raise PipelineError(f"the pytrickle peer runs {', '.join(PYTRICKLE_WORKFLOWS)} only")
        sent = time.monotonic()
        blur = WORKFLOWS[workflow]["2"]["inputs"] if workflow == "blur" else None
        self._spawn(stream_id, urls, width, height, fps, blur)
        return sent

    def _spawn(
        self, stream_id: str, urls: dict[str, str], width: int, height: int, fps: float,
        blur: dict[str, Any] | None = None,
    ) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        stats = self.work_dir / f"{stream_id}.json"
        stats.unlink(missing_ok=True)
        stats.with_suffix(".ready").unlink(missing_ok=True)
        log = open(self.work_dir / f"{stream_id}.log", "wb")  # noqa: SIM115 - closed in stop_stream
        args = [
            self.python, str(PYTRICKLE_PEER),
            "--subscribe-url", urls["in"], "--publish-url", urls["out"],
            "--control-url", urls["control"], "--events-url", urls["events"],
            "--width", str(width), "--height", str(height),
            # pytrickle's decoder drops frames above max_framerate (default 24): let every frame through
            "--max-framerate", str(max(1, round(fps))),
            "--max-seconds", str(self.max_seconds), "--stats-out", str(stats),
        ]  # fmt: skip
        if blur is not None:
            args += ["--blur-radius", str(blur["blur_radius"]), "--blur-sigma", str(blur["sigma"])]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # keep our code out of its venv
        self._procs[stream_id] = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip
        self._stats_files[stream_id] = stats
        self._logs[stream_id] = log

    async def wait_ready(self, stream_id: str, timeout_s: float = 90.0) -> None:
        """Wait until the peer's imports are done and its client is starting (torch takes seconds)."""
        ready = self._stats_files[stream_id].with_suffix(".ready")
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            proc = self._procs[stream_id]
            if proc.poll() is not None:
                raise PipelineError(f"pytrickle peer exited with {proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise PipelineError("pytrickle peer not ready in time")
            await asyncio.sleep(0.05)

    async def status(self, session: aiohttp.ClientSession, stream_id: str) -> dict[str, Any] | None:
        return None

    async def stop_stream(self, session: aiohttp.ClientSession, stream_id: str) -> dict[str, Any]:
        """Gives the peer a moment to end by itself (the case DELETEs its input first), then SIGTERMs it."""
        proc = self._procs.pop(stream_id)
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)
            try:
                await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout=2 if sig is None else 5)
                break
            except asyncio.TimeoutError:
                continue
        self._logs.pop(stream_id).close()
        stats = self._stats_files.pop(stream_id)
        try:
            return {"peer": json.loads(stats.read_text()), "returncode": proc.returncode}
        except (OSError, ValueError):
            return {"peer": None, "returncode": proc.returncode}

    async def close(self) -> None:
        for stream_id in list(self._procs):
            proc = self._procs.pop(stream_id)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            self._logs.pop(stream_id).close()


def default_pytrickle_python() -> str:
    """``$PYTRICKLE_PY`` as set by scripts/env.sh, or the cache default."""
    cache = Path(os.environ.get("COMFY_TRICKLE_CACHE", Path.home() / ".cache" / "comfy-trickle"))
    return os.environ.get("PYTRICKLE_PY", str(cache / "venv-pytrickle" / "bin" / "python"))


def python_for_relay() -> str:
    return sys.executable
