"""The browser camera and the full-rate output view, in Debian's chromium (Playwright) with Chromium's fake
camera (``--use-fake-device-for-media-stream``), against the session's real ComfyUI with the pack loaded.

What a user would notice is asserted: the processed video decoded from the stream's output channel is the
camera's picture inverted (the invert graph); the full-rate view draws at least 0.9 x the stream's fps_out;
a denied camera permission gives a clear sentence. Figures (fps drawn, latency behind the output channel)
are printed for the report. Screenshots go to $TMPDIR/comfy-trickle-screenshots/ (docs/screenshots/ with
COMFY_TRICKLE_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import re
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_ui_browser import TRICKLE_TAB_BUTTON

logger = logging.getLogger(__name__)
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

CHROMIUM = Path("/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = (
    REPO_ROOT / "docs" / "screenshots"
    if os.environ.get("COMFY_TRICKLE_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "comfy-trickle-screenshots"
)
INVERT_WORKFLOW = json.loads((REPO_ROOT / "example_workflows" / "api" / "invert.json").read_text())
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
    "--use-fake-device-for-media-stream",
]  # fmt: skip
GRANT_CAMERA = "--use-fake-ui-for-media-stream"  # answers the permission prompt with "allow"
UI_TIMEOUT_MS = 60_000
THUMB = (6, 8)  # rows, columns of the block means compared between camera and output


def open_trickle_tab(browser: Any, base: str) -> tuple[Any, list[dict[str, str]]]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[dict[str, str]] = []
    not_ours = re.compile(r"^(?!" + re.escape(base) + r"/)")
    page.route(not_ours, lambda route: route.abort())
    page.on("console", lambda message: message.type in ("error", "warning") and errors.append(
        {"text": message.text, "url": message.location.get("url", "")}))  # fmt: skip
    page.on("pageerror", lambda error: errors.append({"text": str(error), "url": "pageerror"}))
    page.goto(base + "/", timeout=UI_TIMEOUT_MS)
    page.wait_for_function(
        "(tab) => window.app?.extensionManager && document.querySelector(tab)",
        arg=TRICKLE_TAB_BUTTON, timeout=UI_TIMEOUT_MS,
    )
    page.locator(TRICKLE_TAB_BUTTON).click()
    page.wait_for_selector("#trickle-camera-go-live", timeout=UI_TIMEOUT_MS)
    return page, errors


@pytest.fixture(scope="module")
def browser_and_server(comfyui):
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (scripts/setup installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    assert comfyui.request("POST", "/settings/Comfy.TutorialCompleted", body=b"true").status == 200
    with sync_api.sync_playwright() as playwright:
        granted = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_FLAGS, GRANT_CAMERA]
        )
        try:
            yield playwright, granted, comfyui
        finally:
            granted.close()


@pytest.fixture(scope="module")
def page(browser_and_server):
    _playwright, browser, server = browser_and_server
    page, errors = open_trickle_tab(browser, server.base_url)
    page.console_problems = errors  # type: ignore[attr-defined]
    return page


class OutputReader:
    """Follows a live output channel on a thread and decodes it: frames plus when each arrived."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[tuple[float, Any]] = []
        self._stop = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(1)
        self._future = self._pool.submit(asyncio.run, self._collect())

    async def _collect(self) -> None:
        from comfy_trickle.media.decoder import StreamDecoder
        from comfy_trickle.trickle.subscriber import TrickleSubscriber

        decoder = StreamDecoder(lambda frame: self.frames.append((time.time(), frame)), max_fps=None)
        decoder.start()
        subscriber = TrickleSubscriber(self.url)
        try:
            async for segment in subscriber:
                first = True
                while chunk := await segment.read_chunk():
                    decoder.feed(chunk, segment_start=first)
                    first = False
                    if self._stop.is_set():
                        return
        finally:
            await subscriber.close()
            decoder.stop()
            decoder.join(5)

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.frames) < count and time.monotonic() < deadline and not self._future.done():
            time.sleep(0.05)
        assert len(self.frames) >= count, f"only {len(self.frames)} output frames from {self.url}"

    def close(self) -> None:
        self._stop.set()
        try:
            self._future.result(timeout=30)
        except TimeoutError:
            pass
        self._pool.shutdown(wait=False)


def block_means(rgb: np.ndarray) -> np.ndarray:
    rows, cols = THUMB
    height, width = rgb.shape[:2]
    trimmed = rgb[: height - height % rows, : width - width % cols].astype(np.float64)
    return trimmed.reshape(rows, height // rows, cols, width // cols, 3).mean(axis=(1, 3))


CAMERA_BLOCKS = """([rows, cols]) => {
    const video = document.getElementById('trickle-camera-video');
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    const context = canvas.getContext('2d');
    context.drawImage(video, 0, 0);
    const {data, width, height} = context.getImageData(0, 0, canvas.width, canvas.height);
    const bh = Math.floor(height / rows), bw = Math.floor(width / cols);
    const out = [];
    for (let r = 0; r < rows; r++) { const row = []; for (let c = 0; c < cols; c++) {
        const sum = [0, 0, 0];
        for (let y = r * bh; y < (r + 1) * bh; y++) for (let x = c * bw; x < (c + 1) * bw; x++) {
            const i = (y * width + x) * 4; sum[0] += data[i]; sum[1] += data[i + 1]; sum[2] += data[i + 2]; }
        row.push(sum.map(v => v / (bh * bw))); } out.push(row); }
    return {blocks: out, width, height};
}"""

PLAYER_RATE = """async ([selector, ms]) => {
    const player = document.querySelector(selector);
    const before = Number(player.dataset.frames), t0 = performance.now();
    await new Promise(resolve => setTimeout(resolve, ms));
    return {frames: Number(player.dataset.frames) - before, seconds: (performance.now() - t0) / 1000,
            latency_ms: Number(player.dataset.latencyMs), state: player.dataset.state,
            skipped: Number(player.dataset.skipped || 0),
            decode_errors: Number(player.dataset.decodeErrors || 0)};
}"""


def stream_status(server: Any, stream_id: str) -> dict[str, Any]:
    status, body = server.get(f"/stream/{stream_id}/status")
    assert status == 200, body
    return body


def measure_rate(page: Any, server: Any, selector: str, stream_id: str, seconds: float) -> dict[str, Any]:
    """Frames the page drew over ``seconds`` against the stream's own fps_out (read before and after)."""
    before = stream_status(server, stream_id)["counters"]
    drawn = page.evaluate(PLAYER_RATE, [selector, int(seconds * 1000)])
    after = stream_status(server, stream_id)["counters"]
    produced = (after["frames_out"] - before["frames_out"]) / drawn["seconds"]
    return {**drawn, "fps_drawn": drawn["frames"] / drawn["seconds"], "fps_out": produced}


def go_live_with_the_camera_and_check_inverted(page: Any, server: Any, microphone: str = "") -> str:
    """Go live with the fake camera (and ``microphone``: "" none, "default" the fake one) on the invert
    graph; assert the output channel carries the camera inverted; returns the stream id."""
    page.evaluate("async ([wf]) => { await window.app.loadApiJson(wf, 'invert.json') }", [INVERT_WORKFLOW])
    page.select_option("#trickle-camera-size", "320x240")
    page.select_option("#trickle-microphone", microphone)
    page.click("#trickle-camera-go-live")
    page.wait_for_selector("#trickle-camera-panel[data-stream-id]", timeout=UI_TIMEOUT_MS)
    stream_id = page.get_attribute("#trickle-camera-panel", "data-stream-id")
    page.wait_for_selector(f'.trickle-stream[data-stream-id="{stream_id}"][data-state="running"]',
                           timeout=UI_TIMEOUT_MS)  # fmt: skip
    config = stream_status(server, stream_id)["config"]
    assert config["subscribe_url"].endswith(f"/trickle/relay/{stream_id}")
    assert (config["width"], config["height"]) == (320, 240)
    assert_output_is_the_camera_inverted(page, config["publish_url"])
    return stream_id


def assert_output_is_the_camera_inverted(page: Any, publish_url: str) -> None:
    """The processed video, decoded from the stream's output channel with PyAV, is the camera inverted:
    block means of the newest output frame against the camera's picture at that moment."""
    reader = OutputReader(publish_url)
    try:
        reader.wait_for(20)
        comparisons, not_inverted = [], []
        for _ in range(5):
            camera = page.evaluate(CAMERA_BLOCKS, list(THUMB))
            newest = reader.frames[-1][1].rgb
            assert newest.shape == (240, 320, 3)
            assert (camera["width"], camera["height"]) == (320, 240)
            camera_blocks = np.array(camera["blocks"])
            output_blocks = block_means(newest)
            comparisons.append(float(np.abs(output_blocks - (255 - camera_blocks)).mean()))
            not_inverted.append(float(np.abs(output_blocks - camera_blocks).mean()))
            contrast = float(camera_blocks.max() - camera_blocks.min())
            assert contrast > 40, "the fake camera's picture should not be flat"
            page.wait_for_timeout(300)
    finally:
        reader.close()
    # Inverted, the blocks match within a few levels (H.264 twice and the fake camera's animation between
    # the two grabs); compared without inverting they are far apart.
    logger.info(
        "camera vs output block mean abs difference: inverted %s, not inverted %s", comparisons, not_inverted
    )
    assert statistics.median(comparisons) < 25, comparisons
    assert statistics.median(not_inverted) > 60, not_inverted  # the check tells inverted from not


def stop_camera(page: Any, server: Any, stream_id: str) -> None:
    page.click("#trickle-camera-stop")
    page.wait_for_selector(f'.trickle-stream[data-stream-id="{stream_id}"][data-state="stopped"],'
                           f'.trickle-stream[data-stream-id="{stream_id}"][data-state="completed"]',
                           timeout=30_000)  # fmt: skip
    assert stream_status(server, stream_id)["state"] in ("stopped", "completed")
    assert page.is_visible("#trickle-camera-go-live")


def test_go_live_with_the_camera_plays_the_inverted_camera(page, browser_and_server):
    _playwright, _browser, server = browser_and_server
    stream_id = go_live_with_the_camera_and_check_inverted(page, server)
    assert page.get_attribute("#trickle-camera-panel", "data-transport") == "h264"

    # The processed video plays next to the camera, at the stream's frame rate.
    output = "#trickle-camera-output"
    page.wait_for_selector(f'{output}[data-state="playing"]', timeout=UI_TIMEOUT_MS)
    rate = measure_rate(page, server, output, stream_id, seconds=6)
    logger.info("camera stream: drawn %.1f fps, fps_out %.1f; server-stamped player latency p50 %s ms",
                rate["fps_drawn"], rate["fps_out"], rate["latency_ms"])  # fmt: skip
    assert rate["fps_drawn"] >= 0.9 * rate["fps_out"], rate
    assert rate["fps_out"] > 5

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    panel = page.locator("#trickle-panel").bounding_box()
    camera_box = page.locator("#trickle-camera-panel").bounding_box()
    page.screenshot(
        path=str(SCREENSHOTS / "camera-go-live.png"),
        clip={"x": 0, "y": camera_box["y"] - 30, "width": panel["x"] + panel["width"] + 8,
              "height": camera_box["height"] + 40},
    )  # fmt: skip

    stop_camera(page, server, stream_id)


def test_restart_on_a_camera_stream_keeps_the_camera_going(page, browser_and_server):
    """Restart stops the stream and starts it again: the camera must go on into the restarted run (it
    ended with the old run's stop, and the restarted stream completed on leftover frames)."""
    _playwright, _browser, server = browser_and_server
    stream_id = go_live_with_the_camera_and_check_inverted(page, server)
    first_run = stream_status(server, stream_id)
    page.click(f'.trickle-stream[data-stream-id="{stream_id}"] .trickle-restart')
    deadline = time.monotonic() + 30
    while (status := stream_status(server, stream_id))["started_at"] == first_run["started_at"]:
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    page.wait_for_timeout(6000)  # longer than the leftover frames of a stopped camera last
    restarted = stream_status(server, stream_id)
    assert restarted["state"] == "running", restarted
    assert page.get_attribute("#trickle-camera-panel", "data-stream-id") == stream_id
    assert restarted["counters"]["frames_in"] > 100, restarted["counters"]  # ~6 s at the camera's rate
    assert_output_is_the_camera_inverted(page, restarted["config"]["publish_url"])
    stop_camera(page, server, stream_id)


def read_output_segments(url: str, seconds: float) -> list[bytes]:
    """The output channel's segments (TS bytes each) that arrive within ``seconds``, from the current one."""
    from comfy_trickle.trickle.subscriber import TrickleSubscriber

    async def collect() -> list[bytes]:
        got: list[bytes] = []
        deadline = time.monotonic() + seconds
        async with TrickleSubscriber(url) as subscriber:
            async for segment in subscriber:
                data = b""
                while chunk := await segment.read_chunk():
                    data += chunk
                got.append(data)
                if time.monotonic() > deadline:
                    break
        return got

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # the sync Playwright API owns this thread's loop
        return pool.submit(asyncio.run, collect()).result(timeout=seconds + 60)


def test_go_live_with_camera_and_microphone_carries_the_sound(page, browser_and_server):
    import io

    import av

    _playwright, _browser, server = browser_and_server
    stream_id = go_live_with_the_camera_and_check_inverted(page, server, microphone="default")
    assert page.get_attribute("#trickle-camera-panel", "data-sound") == "opus"
    publish_url = stream_status(server, stream_id)["config"]["publish_url"]
    segments = read_output_segments(publish_url, seconds=5)
    stop_camera(page, server, stream_id)

    # The processed output's segments (PyAV) carry an Opus track beside the video, over the same span.
    video_pts, audio_pts, pcm = [], [], []
    opus = av.CodecContext.create("opus", "r")
    for data in segments[1:]:  # the first may have been joined mid-way
        with av.open(io.BytesIO(data), format="mpegts") as container:
            assert container.streams.audio, "an output segment without the sound track"
            assert container.streams.audio[0].codec_context.name == "opus"
            for packet in container.demux():
                if packet.size == 0 or packet.pts is None:
                    continue
                if packet.stream.type == "video":
                    video_pts.append(float(packet.pts * packet.time_base))
                else:
                    audio_pts.append(float(packet.pts * packet.time_base))
                    pcm += [frame.to_ndarray().ravel() for frame in opus.decode(packet)]
    video_span = max(video_pts) - min(video_pts)
    audio_span = max(audio_pts) - min(audio_pts)
    samples = np.concatenate(pcm).astype(np.float64)
    rms = float(np.sqrt(np.mean(samples**2)))
    logger.info(
        "output sound: %d opus packets over %.2f s (video %.2f s, %d packets), rms %.4f, peak %.3f",
        len(audio_pts), audio_span, video_span, len(video_pts), rms, np.abs(samples).max(),
    )  # fmt: skip
    assert video_span > 2 and audio_span > 0.8 * video_span, (audio_span, video_span)
    assert abs(min(audio_pts) - min(video_pts)) < 1.0 and abs(max(audio_pts) - max(video_pts)) < 1.0
    assert rms > 0.02  # the fake microphone's beeps, not silence


def test_without_a_webcodecs_h264_encoder_the_camera_goes_out_as_jpeg(page, browser_and_server):
    _playwright, _browser, server = browser_and_server
    # What a browser without WebCodecs' VideoEncoder sees (feature detection finds none).
    page.evaluate("() => { window.VideoEncoder = undefined; }")
    stream_id = go_live_with_the_camera_and_check_inverted(page, server)
    assert page.get_attribute("#trickle-camera-panel", "data-transport") == "jpeg"
    assert "JPEG" in page.inner_text("#trickle-camera-message")
    stop_camera(page, server, stream_id)


# Reads media/synthetic.py's frame-index strip from a drawable (canvas or video) in the page.
READ_INDEX_JS = """
function readIndex(source, inverted) {
    const width = source.videoWidth || source.width, height = source.videoHeight || source.height;
    if (!width || !height) return -1;
    const scratch = readIndex.canvas || (readIndex.canvas = document.createElement('canvas'));
    scratch.width = width; scratch.height = height;
    const context = scratch.getContext('2d', {willReadFrequently: true});
    context.drawImage(source, 0, 0);
    const strip = Math.max(8, Math.floor(height / 8) & ~7), cell = Math.floor(width / 16);
    const data = context.getImageData(0, 0, width, strip).data;
    let value = 0;
    for (let bit = 0; bit < 16; bit++) {
        let sum = 0, n = 0;
        for (let y = strip >> 2; y < strip - (strip >> 2); y++)
            for (let x = bit * cell + (cell >> 2); x < (bit + 1) * cell - (cell >> 2); x++) {
                const level = data[(y * width + x) * 4]; sum += inverted ? 255 - level : level; n++; }
        value = (value << 1) | (sum / n >= 128 ? 1 : 0);
    }
    return value;
}
"""


def read_index_in_page(page: Any, selector: str, samples: int) -> list[tuple[int, float]]:
    """(frame index, Date.now() ms) each time the player's canvas shows a new test-source frame index;
    the index is read back from the pixels (media/synthetic.py's strip, here inverted by the graph)."""
    return page.evaluate(
        """async ([selector, samples]) => {
            """
        + READ_INDEX_JS
        + """
            const canvas = document.querySelector(selector + ' canvas');
            const seen = []; let last = -1; const started = performance.now();
            while (seen.length < samples && performance.now() - started < 20000) {
                await new Promise(resolve => requestAnimationFrame(resolve));
                const value = readIndex(canvas, true);
                if (value !== last) { seen.push([value, Date.now()]); last = value; }
            }
            return seen;
        }""",
        [selector, samples],
    )


def test_full_rate_view_of_a_rest_stream_keeps_up_with_fps_out(page, browser_and_server):
    _playwright, _browser, server = browser_and_server
    from comfy_trickle.media.synthetic import read_frame_index

    stream_id = f"watch-{uuid.uuid4().hex[:8]}"
    status, source = server.post_json(
        "/trickle/test-source", {"name": stream_id, "width": 256, "height": 256, "fps": 30, "audio": False}
    )
    assert status == 200, source
    status, body = server.post_json("/stream/start", {
        "gateway_request_id": stream_id, "subscribe_url": source["subscribe_url"],
        "publish_url": source["publish_url"],
        "params": {"width": 256, "height": 256, "prompt": INVERT_WORKFLOW},
    })  # fmt: skip
    assert status == 200, body
    card = f'.trickle-stream[data-stream-id="{stream_id}"]'
    try:
        page.wait_for_selector(f'{card}[data-state="running"]', timeout=UI_TIMEOUT_MS)
        page.click(f"{card} .trickle-watch")
        player = f"{card} .trickle-watch-player"
        page.wait_for_selector(f'{player}[data-state="playing"]', timeout=UI_TIMEOUT_MS)
        assert page.get_attribute(player, "data-channel") == f"{stream_id}-out"
        rate = measure_rate(page, server, player, stream_id, seconds=8)
        assert rate["fps_drawn"] >= 0.9 * rate["fps_out"], json.dumps(rate)
        assert rate["fps_out"] > 5

        # Latency behind the output: the same frame index, first seen on the output channel (PyAV here)
        # and first drawn in the page; same machine, same wall clock.
        reader = OutputReader(source["publish_url"])
        try:
            reader.wait_for(3)
            shown = read_index_in_page(page, player, samples=90)
        finally:
            reader.close()
        arrived = {}
        for at, frame in reader.frames:
            arrived.setdefault(read_frame_index(255 - frame.rgb), at)
        behind = [drawn_ms - arrived[index] * 1000 for index, drawn_ms in shown if index in arrived]
        indices = [index for index, _ in shown]
        assert len(behind) >= 30, (len(behind), indices[:10], sorted(arrived)[:10])
        assert indices == sorted(indices), "the view never goes back in time"
        logger.info(
            "REST stream full-rate view: drawn %.1f fps, fps_out %.1f (skipped %s); latency behind the "
            "output channel p50 %.0f ms, p95 %.0f ms over %d frames; server-stamped p50 %s ms",
            rate["fps_drawn"], rate["fps_out"], rate["skipped"], statistics.median(behind),
            sorted(behind)[int(len(behind) * 0.95)], len(behind), rate["latency_ms"],
        )  # fmt: skip
        page.click(f"{card} .trickle-player-enlarge")
        assert "trickle-player-enlarged" in (page.get_attribute(player, "class") or "")
        page.click(f"{card} .trickle-player-enlarge")
    finally:
        server.request("POST", f"/stream/{stream_id}/stop")
        server.request("DELETE", f"/trickle/test-source/{stream_id}")


NUMBERED_FRAMES = 300  # the fake camera loops this file: 10 s at 30 fps


def write_numbered_camera(path: Path) -> None:
    """A Y4M file of the synthetic pattern (frame index in the top strip) for Chromium's fake camera."""
    import av
    from comfy_trickle.media.synthetic import make_test_frame

    with av.open(str(path), "w", format="yuv4mpegpipe") as output:
        stream = output.add_stream("rawvideo", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for index in range(NUMBERED_FRAMES):
            frame = av.VideoFrame.from_ndarray(make_test_frame(index, 320, 240), format="rgb24")
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)


def test_glass_to_glass_with_a_numbered_camera(browser_and_server, tmp_path):
    """The fake camera plays numbered frames; at each page refresh the camera's own picture and the
    processed output are read back: their index difference is the camera-to-screen delay (both in the same
    page at the same instant). The output follows the camera; the delay is a figure for the report."""
    playwright, _browser, server = browser_and_server
    numbered = tmp_path / "numbered.y4m"
    write_numbered_camera(numbered)
    args = [*CHROMIUM_FLAGS, GRANT_CAMERA, f"--use-file-for-fake-video-capture={numbered}"]
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
    try:
        page, _errors = open_trickle_tab(browser, server.base_url)
        page.evaluate(
            "async ([wf]) => { await window.app.loadApiJson(wf, 'invert.json') }", [INVERT_WORKFLOW]
        )
        page.select_option("#trickle-camera-size", "320x240")
        page.click("#trickle-camera-go-live")
        page.wait_for_selector('#trickle-camera-output[data-state="playing"]', timeout=UI_TIMEOUT_MS)
        stream_id = page.get_attribute("#trickle-camera-panel", "data-stream-id")
        pairs = page.evaluate(
            """async () => {
                """
            + READ_INDEX_JS
            + """
                const video = document.getElementById('trickle-camera-video');
                const canvas = document.querySelector('#trickle-camera-output canvas');
                const pairs = []; const started = performance.now();
                while (performance.now() - started < 6000) {
                    await new Promise(resolve => requestAnimationFrame(resolve));
                    pairs.push([readIndex(video, false), readIndex(canvas, true)]);
                }
                return pairs;
            }"""
        )
        fps_out = stream_status(server, stream_id)["counters"]["fps_out"]
        page.click("#trickle-camera-stop")
    finally:
        browser.close()
    valid = [(cam, out) for cam, out in pairs if 0 <= cam < NUMBERED_FRAMES and 0 <= out < NUMBERED_FRAMES]
    assert len(valid) >= len(pairs) // 2, pairs[:20]  # both pictures carry readable frame numbers
    behind = [(cam - out) % NUMBERED_FRAMES for cam, out in valid]
    outputs = [out for _cam, out in valid]
    assert len(set(outputs)) >= 20, "the output did not move with the camera"
    assert statistics.median(behind) < NUMBERED_FRAMES // 2  # the output shows past camera frames, not noise
    logger.info(
        "glass to glass (camera picture in the page -> processed picture in the page): p50 %d frames = "
        "%.0f ms, p95 %d frames at 30 fps camera; stream fps_out %.1f",
        statistics.median(behind), statistics.median(behind) * 1000 / 30,
        sorted(behind)[int(len(behind) * 0.95)], fps_out,
    )  # fmt: skip


def test_camera_permission_denied_gives_a_clear_message(browser_and_server):
    playwright, _browser, server = browser_and_server
    denying = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
    try:
        page, _errors = open_trickle_tab(denying, server.base_url)
        _status, before = server.get("/streams")
        page.click("#trickle-camera-go-live")
        page.wait_for_function(
            "() => document.getElementById('trickle-camera-message').textContent.length > 0", timeout=30_000
        )
        message = page.inner_text("#trickle-camera-message")
        assert message.startswith("Camera permission was denied."), message
        assert page.get_attribute("#trickle-camera-panel", "data-error") == "NotAllowedError"
        _status, after = server.get("/streams")
        assert set(after["streams"]) == set(before["streams"])  # nothing started
    finally:
        denying.close()


def test_no_console_errors_from_the_camera_or_player(page):
    ours = [
        e
        for e in page.console_problems
        if re.search(r"camera\.js|player\.js|\[Trickle\]", e["text"] + e["url"])
    ]
    assert ours == [], json.dumps(page.console_problems, indent=1)
