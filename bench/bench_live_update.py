"""Live control figures (issue 11): update -> first changed output frame, and the output's longest gap
during a swap.

One stream (the synthetic pattern, 256x256 at 30 fps, paced in real time) runs the light ``invert``
workflow; every ``SWAP_EVERY_S`` the bench swaps it (``POST /stream/{id}/update``) between invert and
passthrough. After the run, each decoded output frame is read back (its frame index, inverted or not),
so for every update we know the first output frame carrying the new workflow and when it arrived here:
``update_to_change_ms`` = that arrival - the moment the update request was sent. ``swap_gap_ms`` is the
longest time between two output frames' arrival within a second of each update. Goal (issue 11):
update -> change <= 2 frame intervals (66.7 ms at 30 fps).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import aiohttp
import numpy as np
from comfy_trickle.devtools.stream_harness import INVERT, StreamAPI, collect_output_timed, publish_synthetic
from comfy_trickle.media.synthetic import make_test_frame, read_frame_index

from .gateway import create_channel, delete_channel
from .metrics import percentile

logger = logging.getLogger(__name__)

SIZE = 256
FPS = 30.0
SWAP_EVERY_S = 1.0
PASSTHROUGH = {
    "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
    "3": {"class_type": "TrickleOutput", "inputs": {"images": ["1", 0], "stream_id": ""}},
}


def is_inverted(rgb: np.ndarray) -> bool:
    """Whether an output frame of the synthetic pattern is its inverse (whichever reading fits better)."""
    errors = {}
    for inverted, picture in ((False, rgb), (True, 255 - rgb)):
        expected = make_test_frame(read_frame_index(picture), rgb.shape[1], rgb.shape[0])
        errors[inverted] = float(np.abs(picture.astype(np.int16) - expected.astype(np.int16)).mean())
    return errors[True] < errors[False]


async def run_live_update(base_url: str, relay_url: str, seconds: float) -> dict[str, Any]:
    """Swap workflows about once a second for ``seconds``; returns the figures (see the module docstring)."""
    stream_id = f"bench-live-{uuid.uuid4().hex[:8]}"
    urls = {name: f"{relay_url.rstrip('/')}/{stream_id}-{name}" for name in ("in", "out")}
    api = StreamAPI(base_url)
    async with aiohttp.ClientSession() as http:
        for url in urls.values():
            await create_channel(http, url)
        try:
            status, body = await api.start(stream_id, urls["in"], urls["out"], INVERT, SIZE, SIZE)
            if status != 200:
                raise RuntimeError(f"/stream/start answered {status}: {body}")
            collector = asyncio.create_task(collect_output_timed(urls["out"], timeout=seconds + 60))
            frames = round(seconds * FPS)
            feeder = asyncio.create_task(
                publish_synthetic(urls["in"], frames, width=SIZE, height=SIZE, fps=FPS)
            )
            updates: list[tuple[float, bool]] = []  # (monotonic time sent, inverted after it)
            await asyncio.sleep(2.0)  # settle
            inverted = True
            while not feeder.done() and len(updates) < max(1, int((seconds - 3.0) / SWAP_EVERY_S)):
                inverted = not inverted
                sent = time.monotonic()
                status, body = await api.update(stream_id, {"prompt": INVERT if inverted else PASSTHROUGH})
                if status != 200:
                    raise RuntimeError(f"update answered {status}: {body}")
                updates.append((sent, inverted))
                await asyncio.sleep(SWAP_EVERY_S)
            await feeder
            output = await collector
            final = await api.wait_state(stream_id, {"completed", "error"})
        finally:
            await api.close()
            for url in urls.values():
                await delete_channel(http, url)
    looks = [is_inverted(frame.rgb) for frame in output.frames]
    latencies, gaps = [], []
    for sent, want in updates:
        arrivals = zip(output.arrivals, looks, strict=True)
        changed = next((t for t, look in arrivals if t >= sent and look == want), None)
        if changed is not None:
            latencies.append((changed - sent) * 1000.0)
        window = [t for t in output.arrivals if sent - 0.2 <= t <= sent + 1.0]
        gaps.append(max((b - a for a, b in zip(window, window[1:], strict=False)), default=0.0) * 1000.0)
    ordered = sorted(latencies)
    return {
        "size": f"{SIZE}x{SIZE}",
        "fps": FPS,
        "frame_interval_ms": round(1000.0 / FPS, 1),
        "updates": len(updates),
        "changes_seen": len(latencies),
        "update_to_change_ms": {
            "p50": round(percentile(ordered, 0.50), 1) if ordered else None,
            "p95": round(percentile(ordered, 0.95), 1) if ordered else None,
            "max": round(ordered[-1], 1) if ordered else None,
        },
        "swap_gap_ms_max": round(max(gaps), 1) if gaps else None,
        "frames_in": final["counters"]["frames_in"],
        "frames_out": final["counters"]["frames_out"],
        "frames_covered": final["counters"].get("frames_covered"),
        "state": final["state"],
    }
