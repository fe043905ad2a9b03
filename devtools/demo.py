"""The demo: live video through a ComfyUI workflow on this machine, written to an mp4.

    python -m comfy_trickle.devtools.demo [--seconds 20] [--comfyui-url http://127.0.0.1:8188]
                                          [--output x.mp4]

(``scripts/demo`` sets everything up and runs this.) Steps:

1. Start ComfyUI (a subprocess on 127.0.0.1 with this pack symlinked into an isolated base directory,
   ``$COMFY_TRICKLE_CACHE/demo-base``), or use the running one given by ``--comfyui-url``.
2. ``POST /trickle/test-source``: ComfyUI's dev relay gets a channel fed in real time with the synthetic
   test pattern (moving picture plus a tone).
3. ``POST /stream/start`` with that channel as input, a second relay channel as output and the example
   workflow ``example_workflows/api/tinted_negative.json`` (core nodes only, CPU friendly).
4. Read the output channel with our trickle subscriber while logging progress from the status route
   (frames in/out, fps, latency), for ``--seconds`` or until Ctrl-C.
5. Stop the stream and the source, remux the received MPEG-TS into an mp4 (PyAV, no re-encoding), log
   where it is, and stop ComfyUI if we started it.

Files: only the mp4 (default ``out/comfy-trickle-demo.mp4`` in the pack, a gitignored folder); the
received MPEG-TS is scratch in a temporary folder beside it, removed however the demo ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import av

from ..trickle.errors import TrickleChannelNotFound, TrickleError
from ..trickle.subscriber import TrickleSubscriber
from .comfyui_server import PACK_DIR, ComfyUIError, ComfyUIServer, start_comfyui

logger = logging.getLogger("comfy_trickle.demo")

DEFAULT_WORKFLOW = PACK_DIR / "example_workflows" / "api" / "tinted_negative.json"
DEFAULT_OUTPUT = PACK_DIR / "out" / "comfy-trickle-demo.mp4"
PROGRESS_INTERVAL_S = 2.0
PLAIN_DEFAULT_PORT = 8188
DRAIN_TIMEOUT_S = 10.0


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why and what to do."""


# --------------------------------------------------------------------------------------------- ComfyUI


async def launch_comfyui(port: int, stop_event: asyncio.Event) -> ComfyUIServer:
    """Start ComfyUI with this pack in ``$COMFY_TRICKLE_CACHE/demo-base`` (kept across runs, so ComfyUI's
    user settings stay) and wait until it answers; Ctrl-C meanwhile stops it."""
    cache = Path(os.environ.get("COMFY_TRICKLE_CACHE", Path.home() / ".cache" / "comfy-trickle"))
    base_directory = cache / "demo-base"
    log_path = base_directory / "comfyui.log"
    logger.info("Starting ComfyUI (log: %s)", log_path)
    try:
        server = await asyncio.to_thread(
            start_comfyui, base_directory, log_path, port=port, interrupted=stop_event.is_set,
            die_with_parent=False,  # --keep-comfyui leaves it running after we exit
        )  # fmt: skip
    except ComfyUIError as err:
        raise DemoError(
            f"{err}\nRun scripts/demo (it sets up ComfyUI), or pass --comfyui-url of a running ComfyUI "
            "that has comfy-trickle installed"
        ) from err
    return server


# --------------------------------------------------------------------------------------------- HTTP


async def _call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> dict[str, Any]:
    async with session.request(method, url, json=body) as resp:
        try:
            answer = await resp.json(content_type=None)
        except ValueError:
            answer = {"error": (await resp.text())[:500]}
        if resp.status != 200:
            detail = answer.get("error") if isinstance(answer, dict) else answer
            extra = answer.get("node_errors") if isinstance(answer, dict) else None
            raise DemoError(
                f"{method} {url} answered {resp.status}: {detail}" + (f" {extra}" if extra else "")
            )
        return answer


def _progress_line(status: dict[str, Any]) -> str:
    counters = status.get("counters") or {}
    latency = counters.get("latency_ms") or {}
    line = (
        f"[{status.get('state')}] frames in {counters.get('frames_in', 0)}, "
        f"out {counters.get('frames_out', 0)}, dropped {counters.get('frames_dropped', 0)}; "
        f"fps in {counters.get('fps_in', 0):.1f}, out {counters.get('fps_out', 0):.1f}; "
        f"latency p50 {latency.get('p50', 0):.0f} ms, p95 {latency.get('p95', 0):.0f} ms"
    )
    error = status.get("error")
    if error:
        line += f"; error in node {error.get('node_id')} ({error.get('node_type')}): {error.get('message')}"
    return line


# --------------------------------------------------------------------------------------------- output


async def record_channel(url: str, ts_path: Path, give_up_at: float) -> int:
    """Append every segment of trickle channel ``url`` to ``ts_path`` until the channel ends.

    The channel appears only when the stream publishes its first segment, so "not found" is retried
    until ``give_up_at`` (monotonic). Returns the number of segments written.
    """
    written = 0
    with open(ts_path, "wb") as out:  # noqa: ASYNC230 - small local writes, one per received chunk
        while True:
            try:
                async with TrickleSubscriber(url, start_seq=0) as subscriber:
                    async for segment in subscriber:
                        async for chunk in segment.iter_chunks():
                            out.write(chunk)
                        written += 1
                return written
            except TrickleChannelNotFound:
                if written or time.monotonic() > give_up_at:
                    return written
                await asyncio.sleep(0.2)


def _has_bytes(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def remux_to_mp4(ts_path: Path, mp4_path: Path) -> int:
    """Copy the video (and audio, when the mp4 muxer takes it) of ``ts_path`` into ``mp4_path``.

    Returns the number of video packets written. No re-encoding: the mp4 holds the stream's own H.264.
    """
    video_packets = 0
    with av.open(str(ts_path)) as source, av.open(str(mp4_path), "w", format="mp4") as target:
        streams = {}
        for stream in source.streams:
            if stream.type not in ("video", "audio"):
                continue
            try:
                streams[stream.index] = target.add_stream_from_template(stream)
            except (ValueError, av.FFmpegError) as err:
                logger.warning("Leaving out %s stream %s: %s", stream.type, stream.codec_context.name, err)
        if not streams:
            raise DemoError(f"No video in {ts_path}")
        for packet in source.demux(*[s for s in source.streams if s.index in streams]):
            if packet.dts is None or packet.size == 0:
                continue
            packet.stream = streams[packet.stream.index]
            target.mux(packet)
            video_packets += packet.stream.type == "video"
    return video_packets


# --------------------------------------------------------------------------------------------- main


async def run_demo(args: argparse.Namespace, workflow: dict[str, Any], output: Path) -> Path:
    """Run the whole demo with ``workflow`` (API format); returns ``output``, the mp4 written."""
    # the received MPEG-TS is scratch: in a temporary folder next to the mp4, gone however we end
    with tempfile.TemporaryDirectory(prefix=".comfy-trickle-demo-", dir=output.parent) as scratch:
        return await _run_demo(args, workflow, output, Path(scratch) / "received.ts")


async def _run_demo(args: argparse.Namespace, workflow: dict[str, Any], output: Path, ts_path: Path) -> Path:
    launched: ComfyUIServer | None = None
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    async with aiohttp.ClientSession(headers=headers) as session:
        try:
            if args.comfyui_url:
                base_url = args.comfyui_url.rstrip("/")
            else:
                launched = await launch_comfyui(args.port, stop_event)
                base_url = launched.base_url
            logger.info("Open %s/ to watch: the Trickle sidebar lists the stream", base_url)

            name = f"demo-{secrets.token_hex(3)}"
            source = await _call(
                session, "POST", base_url + "/trickle/test-source",
                {"name": name, "width": args.width, "height": args.height, "fps": args.fps,
                 "duration_s": args.seconds + 30.0},  # bounded even if this process dies
            )  # fmt: skip
            logger.info("Test source publishing to %s", source["subscribe_url"])
            started = await _call(
                session, "POST", base_url + "/stream/start",
                {"subscribe_url": source["subscribe_url"], "publish_url": source["publish_url"],
                 "gateway_request_id": name,
                 "params": {"width": args.width, "height": args.height, "prompt": workflow}},
            )  # fmt: skip
            logger.info("Stream %s %s; output channel %s", name, started.get("state"), source["publish_url"])
            recorder = asyncio.create_task(
                record_channel(source["publish_url"], ts_path, time.monotonic() + args.seconds + 60.0)
            )
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline and not stop_event.is_set() and not recorder.done():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop_event.wait(), PROGRESS_INTERVAL_S)
                status = await _call(session, "GET", f"{base_url}/stream/{name}/status")
                logger.info("%s", _progress_line(status))
                if status.get("state") in ("error", "completed", "stopped"):
                    break
            final = await _call(session, "POST", f"{base_url}/stream/{name}/stop")
            logger.info("Stopped. Final: %s", _progress_line(final))
            with contextlib.suppress(DemoError):
                await _call(session, "DELETE", f"{base_url}/trickle/test-source/{name}")
            try:
                segments = await asyncio.wait_for(recorder, DRAIN_TIMEOUT_S)
            except asyncio.TimeoutError:
                segments = -1
                logger.warning("The output channel did not end within %.0f s", DRAIN_TIMEOUT_S)
            except TrickleError as err:
                raise DemoError(f"Reading the output channel failed: {err}") from err
            if not _has_bytes(ts_path):
                raise DemoError("No output arrived from the stream; see ComfyUI's log")
            frames = remux_to_mp4(ts_path, output)
            logger.info("Received %d segments, %d video frames", segments, frames)
            logger.info("ComfyUI: %s/", base_url)
            logger.info("Output video: %s", output)
            if launched is not None and not args.keep_comfyui:
                logger.info("(ComfyUI stops now; --keep-comfyui leaves it running)")
            return output
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if launched is not None:
                if args.keep_comfyui:
                    pid = launched.process.pid
                    logger.info("ComfyUI keeps running at %s (pid %d)", launched.base_url, pid)
                else:
                    launched.stop()


async def serve_plain(port: int) -> None:
    """``--plain``: only ComfyUI with the pack (no stream), to click around, until Ctrl-C."""
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)
    try:
        server = await launch_comfyui(port or PLAIN_DEFAULT_PORT, stop_event)
        try:
            logger.info("ComfyUI with comfy-trickle is ready: %s/   (Ctrl-C stops it)", server.base_url)
            while not stop_event.is_set() and server.is_running():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop_event.wait(), 1.0)
            if not server.is_running():
                raise DemoError(f"ComfyUI exited with {server.process.returncode}; see {server.log_path}")
        finally:
            server.stop()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m comfy_trickle.devtools.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to stream (default 20)")
    parser.add_argument("--comfyui-url", help="use this running ComfyUI instead of starting one")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("COMFY_TRICKLE_DEMO_PORT") or 0),
        help="port for the ComfyUI we start (default: $COMFY_TRICKLE_DEMO_PORT, else a free one)",
    )
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help=f"mp4 to write ({DEFAULT_OUTPUT})")
    parser.add_argument("--workflow", default=str(DEFAULT_WORKFLOW), help="API-format workflow JSON")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--token", default=os.environ.get("COMFY_TRICKLE_TOKEN", ""), help="bearer token")
    parser.add_argument("--keep-comfyui", action="store_true", help="leave the started ComfyUI running")
    parser.add_argument(
        "--plain",
        action="store_true",
        help=f"only start ComfyUI with the pack, no stream, until Ctrl-C (port default {PLAIN_DEFAULT_PORT})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[demo] %(message)s")
    if args.plain:
        try:
            asyncio.run(serve_plain(args.port))
        except DemoError as err:
            logger.error("%s", err)  # noqa: TRY400 - the message is the whole story
            return 1
        return 0
    try:
        workflow = json.loads(Path(args.workflow).read_text(encoding="utf-8"))
        output = Path(args.output).resolve()
        output.parent.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as err:
        logger.error("Cannot use --workflow/--output: %s", err)  # noqa: TRY400 - the message says it all
        return 2
    try:
        asyncio.run(run_demo(args, workflow, output))
    except DemoError as err:
        logger.error("%s", err)  # noqa: TRY400 - the message is the whole story
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
