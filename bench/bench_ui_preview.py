"""What the web UI's live preview costs a running stream: output fps with and without preview viewers.

    source scripts/env.sh
    $COMFY_TRICKLE_PY bench/bench_ui_preview.py [--size 512] [--viewers 3] [--preview-fps 5] [--window 20]

Starts a real ComfyUI with the pack, a local test source (30 fps) and one stream running the invert
workflow, then measures the stream's output rate (frames_out delta over wall time) in alternating windows:
no viewers, N viewers each pulling GET /trickle/preview/{id}.jpg at the UI's default 5 fps (as N open
browser tabs would, with If-None-Match), no viewers again, N viewers again. Prints one line per window and
the preview answers seen (200 = a JPEG, 304 = unchanged frame). Everything is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from comfy_trickle.devtools.comfyui_server import start_comfyui

REPO_ROOT = Path(__file__).resolve().parents[1]
INVERT = json.loads((REPO_ROOT / "example_workflows" / "api" / "invert.json").read_text())


def call(base: str, method: str, path: str, body: object = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def viewer(base: str, stream_id: str, fps: float, stop: threading.Event, answers: dict[int, int]) -> None:
    """One browser tab's preview loop: one request at a time, at most ``fps`` per second, ETag sent back."""
    etag = None
    period = 1.0 / fps
    while not stop.is_set():
        started = time.monotonic()
        headers = {"If-None-Match": etag} if etag else {}
        url = f"{base}/trickle/preview/{stream_id}.jpg?max_width=512"
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
                etag = response.headers.get("ETag")
                status = response.status
        except urllib.error.HTTPError as err:
            status = err.code
        answers[status] = answers.get(status, 0) + 1
        stop.wait(max(0.0, period - (time.monotonic() - started)))


def frames_out(base: str, stream_id: str) -> int:
    return int(call(base, "GET", f"/stream/{stream_id}/status")["counters"]["frames_out"])


def measure(base: str, stream_id: str, seconds: float) -> float:
    start_frames, start = frames_out(base, stream_id), time.monotonic()
    time.sleep(seconds)
    return (frames_out(base, stream_id) - start_frames) / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--viewers", type=int, default=3)
    parser.add_argument("--preview-fps", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=20.0, help="seconds per measurement window")
    parser.add_argument("--rounds", type=int, default=2, help="no-viewer/viewer window pairs")
    args = parser.parse_args()

    base_dir = Path(tempfile.mkdtemp(prefix="bench-ui-preview-"))
    server = start_comfyui(base_dir, base_dir / "comfyui.log")
    base = server.base_url
    stream_id = "bench-preview"
    try:
        source = call(base, "POST", "/trickle/test-source",
                      {"name": stream_id, "width": args.size, "height": args.size, "fps": 30, "audio": False})
        call(base, "POST", "/stream/start", {
            "gateway_request_id": stream_id, "subscribe_url": source["subscribe_url"],
            "publish_url": source["publish_url"],
            "params": {"width": args.size, "height": args.size, "prompt": INVERT},
        })  # fmt: skip
        time.sleep(8)  # warm-up: first prompts, encoder start
        print(f"stream {args.size}x{args.size} from a 30 fps test source; {args.viewers} viewers at "
              f"{args.preview_fps:g} fps; {args.window:g} s windows")
        results: dict[str, list[float]] = {"no viewers": [], "viewers": []}
        for _ in range(args.rounds):
            fps = measure(base, stream_id, args.window)
            results["no viewers"].append(fps)
            print(f"  no viewers        fps_out {fps:6.2f}", flush=True)
            stop = threading.Event()
            answers: dict[int, int] = {}
            viewer_args = (base, stream_id, args.preview_fps, stop, answers)
            threads = [threading.Thread(target=viewer, args=viewer_args) for _ in range(args.viewers)]
            for thread in threads:
                thread.start()
            fps = measure(base, stream_id, args.window)
            stop.set()
            for thread in threads:
                thread.join()
            results["viewers"].append(fps)
            seen = dict(sorted(answers.items()))
            print(f"  {args.viewers} viewers         fps_out {fps:6.2f}   preview answers {seen}", flush=True)
        for name, values in results.items():
            each = ", ".join(f"{value:.2f}" for value in values)
            print(f"mean fps_out, {name:10s}: {sum(values) / len(values):6.2f}  ({each})")
    finally:
        try:
            call(base, "POST", f"/stream/{stream_id}/stop")
            call(base, "DELETE", f"/trickle/test-source/{stream_id}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
