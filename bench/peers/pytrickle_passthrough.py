"""pytrickle 0.1.6 running a bare passthrough between two trickle channels: the benchmark's foreign baseline.

Runs with ``$PYTRICKLE_PY`` (pytrickle's own venv), never with our code: it must not import comfy_trickle.
It wires pytrickle exactly as its docs' "direct client usage" does (``TrickleProtocol`` + ``TrickleClient``
+ a ``FrameProcessor`` that returns every frame unchanged), as in trickle-protocol.md's appendix. It stops
when the input channel ends (the benchmark DELETEs it) or after ``--max-seconds``, then writes a JSON file
with its own timestamps (``time.monotonic()``, comparable across processes on Linux) and frame counts.

    $PYTRICKLE_PY bench/peers/pytrickle_passthrough.py --subscribe-url URL --publish-url URL \
        --width 512 --height 512 --max-framerate 30 --stats-out stats.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

from pytrickle.client import TrickleClient
from pytrickle.frame_processor import FrameProcessor
from pytrickle.protocol import TrickleProtocol

logger = logging.getLogger("pytrickle_passthrough")


def gaussian_blur(tensor: Any, radius: int, sigma: float) -> Any:
    """ComfyUI's ImageBlur (comfy_extras/nodes_post_processing.py) on an ``[..., H, W, C]`` float tensor: a
    reflect-padded depthwise Gaussian convolution, so both pipelines do the same work per frame."""
    import torch
    import torch.nn.functional as F  # noqa: N812 - torch's own alias

    size = radius * 2 + 1
    grid = torch.linspace(-1, 1, size)
    x, y = torch.meshgrid(grid, grid, indexing="ij")
    kernel = torch.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    kernel = kernel / kernel.sum()
    shape = tensor.shape
    images = tensor.reshape(-1, *shape[-3:]).float()
    channels = images.shape[-1]
    kernel = kernel.repeat(channels, 1, 1).unsqueeze(1)
    chw = images.permute(0, 3, 1, 2)
    padded = F.pad(chw, (radius, radius, radius, radius), "reflect")
    blurred = F.conv2d(padded, kernel, padding=size // 2, groups=channels)
    blurred = blurred[:, :, radius:-radius, radius:-radius]
    return blurred.permute(0, 2, 3, 1).reshape(shape).to(tensor.dtype)


class PassthroughProcessor(FrameProcessor):
    """Returns every frame unchanged (or blurred, ``--blur-radius``); counts what it saw."""

    def __init__(self, blur: tuple[int, float] | None = None) -> None:
        super().__init__()
        self.blur = blur
        self.video_frames = 0
        self.audio_frames = 0
        self.first_frame_at: float | None = None

    async def load_model(self, **kwargs: Any) -> None:
        return None

    async def process_video_async(self, frame: Any) -> Any:
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
        self.video_frames += 1
        if self.blur is not None:
            # in a thread, as a real pipeline runs its model, so pytrickle's own I/O goes on meanwhile
            return frame.replace_tensor(await asyncio.to_thread(gaussian_blur, frame.tensor, *self.blur))
        return frame

    async def process_audio_async(self, frame: Any) -> list[Any]:
        self.audio_frames += 1
        return [frame]

    async def update_params(self, params: dict[str, Any]) -> None:
        return None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    processor = PassthroughProcessor((args.blur_radius, args.blur_sigma) if args.blur_radius else None)
    protocol = TrickleProtocol(
        subscribe_url=args.subscribe_url,
        publish_url=args.publish_url,
        control_url=args.control_url or "",
        events_url=args.events_url or "",
        width=args.width,
        height=args.height,
        max_framerate=args.max_framerate,
    )
    client = TrickleClient(protocol=protocol, frame_processor=processor)
    started = time.monotonic()
    task = asyncio.create_task(client.start(request_id="bench"))
    # the benchmark waits for this file (imports done, client starting) before it starts feeding
    args.stats_out.with_suffix(".ready").write_text(json.dumps({"client_started": started}))
    # SIGTERM (the benchmark's stop) ends the client like the deadline does, and the stats still get written
    stop_requested = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop_requested.set)
    stop_waiter = asyncio.create_task(stop_requested.wait())
    done, _ = await asyncio.wait(
        {task, stop_waiter}, timeout=args.max_seconds, return_when=asyncio.FIRST_COMPLETED
    )
    stop_waiter.cancel()
    timed_out = not done

    def stats() -> dict[str, Any]:
        return {
            "client_started": started,
            "first_frame_processed": processor.first_frame_at,
            "finished": time.monotonic(),
            "video_frames_processed": processor.video_frames,
            "audio_frames_processed": processor.audio_frames,
            "timed_out": timed_out,
            "stopped_by_signal": stop_requested.is_set(),
        }

    # written before the shutdown, which can take pytrickle a while (the benchmark may kill it meanwhile)
    args.stats_out.write_text(json.dumps(stats()))
    if task not in done:
        await client.stop()
        try:
            await asyncio.wait_for(task, timeout=3)
        except asyncio.TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return stats()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribe-url", required=True)
    parser.add_argument("--publish-url", required=True)
    parser.add_argument("--control-url", default="")
    parser.add_argument("--events-url", default="")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--max-framerate", type=int, default=30, help="pytrickle's decode rate cap (fps)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="stop after this long at the latest")
    parser.add_argument("--blur-radius", type=int, default=0, help="blur each frame as ComfyUI's ImageBlur")
    parser.add_argument("--blur-sigma", type=float, default=1.0)
    parser.add_argument("--stats-out", type=Path, required=True)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    stats = asyncio.run(run(args))
    args.stats_out.write_text(json.dumps(stats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
