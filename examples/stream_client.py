"""A small async client for comfy-trickle's REST API: start a stream, watch its status, stop it.

    python examples/stream_client.py --comfyui http://127.0.0.1:8188 \\
        --subscribe-url http://gateway:3389/my-stream --publish-url http://gateway:3389/my-stream-out \\
        --workflow example_workflows/api/invert.json --seconds 30

Without ``--subscribe-url`` it asks ComfyUI for its local test source (``POST /trickle/test-source``)
and streams that into ComfyUI's dev relay, so it works on a bare ComfyUI with the pack installed.
Needs only aiohttp. Ctrl-C stops the stream cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
DEFAULT_WORKFLOW = HERE.parent / "example_workflows" / "api" / "invert.json"


class ApiError(RuntimeError):
    """ComfyUI answered with an error status; the message carries its JSON body."""


async def call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> dict[str, Any]:
    """One request; raises ApiError with the server's error body on any non-200 answer."""
    async with session.request(method, url, json=body) as resp:
        answer = await resp.json(content_type=None)
        if resp.status != 200:
            raise ApiError(f"{method} {url} -> {resp.status}: {json.dumps(answer, indent=2)}")
        return answer


def describe(status: dict[str, Any]) -> str:
    counters = status.get("counters") or {}
    latency = counters.get("latency_ms") or {}
    text = (
        f"{status.get('state'):>9}  in {counters.get('frames_in', 0):5d}"
        f"  out {counters.get('frames_out', 0):5d}"
        f"  dropped {counters.get('frames_dropped', 0):4d}  fps {counters.get('fps_out', 0):5.1f}"
        f"  latency p50 {latency.get('p50', 0):6.0f} ms"
    )
    if status.get("error"):
        text += f"  error: {status['error']}"
    return text


async def run(args: argparse.Namespace) -> int:
    base = args.comfyui.rstrip("/")
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    workflow = json.loads(Path(args.workflow).read_text(encoding="utf-8"))  # noqa: ASYNC240 - once, tiny
    stream_id = args.stream_id or f"client-{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with aiohttp.ClientSession(headers=headers) as session:
        subscribe_url, publish_url, test_source = args.subscribe_url, args.publish_url, None
        if not subscribe_url:
            test_source = await call(
                session, "POST", f"{base}/trickle/test-source",
                {"width": args.width, "height": args.height, "duration_s": args.seconds + 30},
            )  # fmt: skip
            subscribe_url, publish_url = test_source["subscribe_url"], test_source["publish_url"]
            print(f"test source: {subscribe_url}")
        if not publish_url:
            raise SystemExit("--publish-url is required with --subscribe-url")

        started = await call(
            session, "POST", f"{base}/stream/start",
            {"subscribe_url": subscribe_url, "publish_url": publish_url, "gateway_request_id": stream_id,
             "params": {"width": args.width, "height": args.height, "prompt": workflow}},
        )  # fmt: skip
        print(f"started {started['request_id']}: output on {publish_url}")
        try:
            deadline = loop.time() + args.seconds
            while not stop.is_set() and loop.time() < deadline:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                status = await call(session, "GET", f"{base}/stream/{stream_id}/status")
                print(describe(status))
                if status["state"] in ("completed", "error", "stopped"):
                    break
        finally:
            final = await call(session, "POST", f"{base}/stream/{stream_id}/stop")
            print("final:", describe(final))
            if test_source is not None:
                with contextlib.suppress(ApiError):
                    await call(session, "DELETE", f"{base}/trickle/test-source/{test_source['name']}")
        return 0 if final.get("state") != "error" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--comfyui", default="http://127.0.0.1:8188", help="ComfyUI base URL")
    parser.add_argument("--subscribe-url", help="trickle channel to read (default: ComfyUI's test source)")
    parser.add_argument("--publish-url", help="trickle channel to write")
    parser.add_argument("--workflow", default=str(DEFAULT_WORKFLOW), help="API-format workflow JSON")
    parser.add_argument("--stream-id", help="stream id (default: random)")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--token", default="", help="bearer token (COMFY_TRICKLE_TOKEN on the server)")
    args = parser.parse_args()
    try:
        return asyncio.run(run(args))
    except ApiError as err:
        print(err, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
