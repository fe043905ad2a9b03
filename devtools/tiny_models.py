"""Small random-weight models in the real formats ComfyUI's loaders read, without any download.

- TAESD (``VAELoader`` "taesd"): ``models/vae_approx/taesd_encoder.safetensors`` and
  ``taesd_decoder.safetensors``, their state dicts taken from ComfyUI's own ``comfy/taesd/taesd.py``
  classes (the keys and shapes ``VAELoader.load_taesd`` and ``comfy.sd.VAE`` expect), weights random.
- A compact ESRGAN (``UpscaleModelLoader``): ``models/upscale_models/tiny_compact_x2.safetensors``, a
  2x ``SRVGGNetCompact`` from spandrel (the library ComfyUI loads upscale models with), 16 features.

The files are made once per test session (or bench run) by ComfyUI's python in ComfyUI's folder (so
ComfyUI's own classes build them), then copied into each ComfyUI's ``--base-directory``. Also here: the
live workflows using them, a big cheap workflow (fairness tests and bench), and a counter of node
executions read from ComfyUI's own websocket events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from .comfyui_server import ComfyUIPaths

TAESD_FILES = ("vae_approx/taesd_encoder.safetensors", "vae_approx/taesd_decoder.safetensors")
UPSCALER_FILE = "upscale_models/tiny_compact_x2.safetensors"
UPSCALER_NAME = "tiny_compact_x2.safetensors"
UPSCALE_FACTOR = 2

_MAKE_MODELS = r"""
import sys, torch
from pathlib import Path
from safetensors.torch import save_file
import comfy.options
comfy.options.enable_args_parsing()
out = Path(sys.argv[1])
sys.argv = [sys.argv[0], "--cpu"]  # ComfyUI's device set-up reads its command line
import comfy.taesd.taesd as taesd
from spandrel.architectures.Compact import Compact

torch.manual_seed(1234)

def randomised(module):
    # ComfyUI's ops skip weight init (weights come from files): fill every tensor ourselves, small
    state = {}
    for key, tensor in module.state_dict().items():
        state[key] = (torch.randn(tensor.shape) * 0.05).contiguous()
    return state

(out / "vae_approx").mkdir(parents=True, exist_ok=True)
save_file(randomised(taesd.Encoder(latent_channels=4)), str(out / "vae_approx/taesd_encoder.safetensors"))
save_file(randomised(taesd.Decoder(latent_channels=4)), str(out / "vae_approx/taesd_decoder.safetensors"))
(out / "upscale_models").mkdir(parents=True, exist_ok=True)
compact = Compact(num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=2, upscale=2)
save_file({k: v.contiguous() for k, v in compact.state_dict().items()},
          str(out / "upscale_models/tiny_compact_x2.safetensors"))
print("ok")
"""


def make_tiny_models(destination: Path, paths: ComfyUIPaths | None = None) -> Path:
    """Write the models under ``destination`` (a ``models`` folder layout); returns ``destination``."""
    paths = paths or ComfyUIPaths.from_env()
    result = subprocess.run(  # noqa: S603 - our own fixed script, ComfyUI's python
        [str(paths.python), "-c", _MAKE_MODELS, str(destination)],
        cwd=paths.comfyui_dir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"making the tiny models failed:\n{result.stdout}\n{result.stderr}")
    return destination


def install_models(models: Path, base_directory: Path) -> None:
    """Copy the made models into a ComfyUI ``--base-directory`` (its ``models`` folder)."""
    for relative in (*TAESD_FILES, UPSCALER_FILE):
        target = base_directory / "models" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copyfile(models / relative, target)


def taesd_workflow(multiplier: float = 1.0) -> dict[str, Any]:
    """TrickleInput -> VAEEncode(taesd) -> LatentMultiply -> VAEDecode -> TrickleOutput."""
    return {
        "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
        "10": {"class_type": "VAELoader", "inputs": {"vae_name": "taesd"}},
        "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0], "vae": ["10", 0]}},
        "12": {"class_type": "LatentMultiply", "inputs": {"samples": ["11", 0], "multiplier": multiplier}},
        "13": {"class_type": "VAEDecode", "inputs": {"samples": ["12", 0], "vae": ["10", 0]}},
        "3": {"class_type": "TrickleOutput", "inputs": {"images": ["13", 0], "stream_id": ""}},
    }


def upscale_workflow() -> dict[str, Any]:
    """TrickleInput -> ImageScaleBy 0.5 -> ImageUpscaleWithModel(2x) -> TrickleOutput (same size out)."""
    return {
        "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
        "20": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": UPSCALER_NAME}},
        "21": {
            "class_type": "ImageScaleBy",
            "inputs": {"image": ["1", 0], "upscale_method": "bilinear", "scale_by": 0.5},
        },
        "22": {
            "class_type": "ImageUpscaleWithModel",
            "inputs": {"upscale_model": ["20", 0], "image": ["21", 0]},
        },
        "3": {"class_type": "TrickleOutput", "inputs": {"images": ["22", 0], "stream_id": ""}},
    }


def big_workflow(nodes: int, leaves: int = 64, constants: int = 32, size: int = 64) -> dict[str, Any]:
    """A ``nodes``-node workflow of cheap core nodes, shaped like a big UI workflow:
    - per frame: TrickleInput -> ``leaves`` ImageInvert -> a balanced ImageBlend tree -> a blend with a
      constant -> TrickleOutput (about 2 x ``leaves`` nodes run every frame);
    - frame-independent: an EmptyImage -> ``constants`` chained ImageInvert (run once, cached);
    - the rest: nodes no output needs (left-over branches: ComfyUI never runs them; the first keep-alive
      design carried them in every prompt of every stream).
    ComfyUI's own per-prompt work grows with how many nodes run and with each node's ancestry (its
    scheduler scans every ready node per step), so the per-frame part is kept modest on purpose."""
    workflow: dict = {"in": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}}}
    level = []
    for index in range(leaves):
        workflow[f"l{index}"] = {"class_type": "ImageInvert", "inputs": {"image": ["in", 0]}}
        level.append(f"l{index}")
    blends = 0

    def blend(first: str, second: str) -> str:
        nonlocal blends
        node_id = f"b{blends}"
        blends += 1
        workflow[node_id] = {
            "class_type": "ImageBlend",
            "inputs": {
                "image1": [first, 0],
                "image2": [second, 0],
                "blend_factor": 0.5,
                "blend_mode": "normal",
            },
        }
        return node_id

    while len(level) > 1:
        merged = [blend(left, right) for left, right in zip(level[::2], level[1::2], strict=False)]
        level = merged + ([level[-1]] if len(level) % 2 else [])
    workflow["c"] = {
        "class_type": "EmptyImage",
        "inputs": {"width": size, "height": size, "batch_size": 1, "color": 0},
    }
    constant = "c"
    for index in range(constants):
        workflow[f"c{index}"] = {"class_type": "ImageInvert", "inputs": {"image": [constant, 0]}}
        constant = f"c{index}"
    workflow["out"] = {
        "class_type": "TrickleOutput",
        "inputs": {"images": [blend(level[0], constant), 0], "stream_id": ""},
    }
    for filler in range(nodes - len(workflow)):
        workflow[f"f{filler}"] = {"class_type": "ImageInvert", "inputs": {"image": ["in", 0]}}
    return workflow


LOADER_IDS = {"VAELoader": "10", "UpscaleModelLoader": "20"}


class ExecutionCounter:
    """Counts ``executing`` events per node id (namespace prefix stripped), and notes the nodes each prompt
    ran, from what ComfyUI sends to one client id: a stream's prompts go to ``comfy-trickle:<stream id>``.
    Cached nodes send none."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.nodes_by_prompt: defaultdict[str, set[str]] = defaultdict(set)

    def record(self, message: dict[str, Any]) -> None:
        if message.get("type") != "executing":
            return
        data = message.get("data") or {}
        node = data.get("node")
        if node is None:
            return
        node_id = str(node).split("_", 1)[-1]
        self.counts[node_id] += 1
        if data.get("prompt_id"):
            self.nodes_by_prompt[data["prompt_id"]].add(node_id)


@contextlib.asynccontextmanager
async def count_executions(base_url: str, client_id: str) -> AsyncIterator[ExecutionCounter]:
    """Listen on ComfyUI's websocket as ``client_id`` while the block runs."""
    counter = ExecutionCounter()
    session = aiohttp.ClientSession()
    socket = await session.ws_connect(f"{base_url}/ws?clientId={client_id}")

    async def read() -> None:
        async for message in socket:
            if message.type == aiohttp.WSMsgType.TEXT:
                counter.record(json.loads(message.data))

    reader = asyncio.create_task(read())
    try:
        yield counter
    finally:
        await asyncio.sleep(0.2)  # the last frames' events are on their way
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await socket.close()
        await session.close()
