"""Fakes for unit tests of the stream engine's pure logic (no ComfyUI, no network, no codec).

``FakeRunner`` imitates ComfyUI's executor: one worker thread runs submitted prompts strictly in order,
doing what ``TrickleInput``/``TrickleOutput`` do (take the ticket's frame from the bridge, hand back the
inverted image), and keeps a history that ``forget`` prunes. ``FakeIngest``/``FakeEgress`` stand in for
trickle + codec.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time

import numpy as np
from comfy_trickle.media.types import MPEGTS_TIME_BASE, DecodedFrame
from comfy_trickle.streams.bridge import BridgeDirectory
from comfy_trickle.streams.executor import PromptOutcome, PromptState, ValidationResult
from comfy_trickle.streams.stages import Stage
from comfy_trickle.streams.workflow import TICKET_INPUT

TIME_BASE = MPEGTS_TIME_BASE


def frame_of(index: int, size: int = 8, decode_s: float | None = 0.001) -> DecodedFrame:
    """A frame whose pixels all hold ``index`` (so outputs can be matched to inputs); ``decode_s`` is
    the decode time a real decoder would have reported."""
    return DecodedFrame(
        np.full((size, size, 3), index % 256, np.uint8), pts=index * 3000, time_base=TIME_BASE, index=index,
        decode_s=decode_s,
    )


class FakeRunner:
    """A serial 'executor' thread with history, interrupt, per-frame failures and slow frames."""

    def __init__(self, bridges: BridgeDirectory) -> None:
        self.bridges = bridges
        self.history: dict[str, dict] = {}
        self.submitted: list[dict] = []
        self.fail_on: dict[int, tuple[str, str, str]] = {}  # input pixel value -> (node id, type, message)
        self.interrupt_on: set[int] = set()
        self.slow_on: dict[int, float] = {}
        self.skip_output_on: set[int] = set()  # these succeed without running the output node
        self.validation_errors: dict = {}
        self.inputs_taken: list[int] = []  # pixel values of the frames the prompts' inputs received
        self.waiting_when_started: list[int] = []  # prompts queued behind each prompt as it started
        self.successor_queued: list[bool] = []  # per finished prompt: another one was already queued
        self._queue: queue.Queue = queue.Queue()
        self._running: str | None = None
        self._queued: set[str] = set()
        self._lock = threading.Lock()
        self._count = 0
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    async def validate(self, workflow, output_node_ids):
        ok = not self.validation_errors
        error = (
            None
            if ok
            else {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"}
        )
        return ValidationResult(ok, error, list(output_node_ids), dict(self.validation_errors), workflow)

    def submit(self, prompt, output_node_ids, client_id, secret):
        assert client_id and secret
        with self._lock:
            self._count += 1
            prompt_id = f"p{self._count}"
            self._queued.add(prompt_id)
        self.submitted.append(prompt)
        self._queue.put((prompt_id, prompt, output_node_ids, secret))
        return prompt_id

    def outcome(self, prompt_id):
        with self._lock:
            if prompt_id in self._queued or prompt_id == self._running:
                return PromptOutcome(PromptState.PENDING)
            entry = self.history.get(prompt_id)
        if entry is None:
            return PromptOutcome(PromptState.LOST)
        return entry["outcome"]

    def forget(self, prompt_id):
        with self._lock:
            self._queued.discard(prompt_id)
            self.history.pop(prompt_id, None)

    def close(self):
        self._queue.put(None)
        self._thread.join(5)

    def _work(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            prompt_id, prompt, outputs, secret = item
            with self._lock:
                if prompt_id not in self._queued:
                    continue  # forgotten while queued
                self._queued.discard(prompt_id)
                self._running = prompt_id
                self.waiting_when_started.append(len(self._queued))
            outcome = self._execute(prompt, outputs, secret)
            with self._lock:
                self._running = None
                self.history[prompt_id] = {"outcome": outcome}
                self.successor_queued.append(bool(self._queued))

    def _execute(self, prompt, outputs, secret):
        input_id = next(
            i for i, n in prompt.items() if n["class_type"] == "TrickleInput" and n["inputs"][TICKET_INPUT]
        )
        node = prompt[input_id]
        bridge = self.bridges.lookup(node["inputs"]["stream_id"])
        if bridge is None:
            return PromptOutcome(PromptState.ERROR, input_id, "TrickleInput", "not running")
        try:
            frame = bridge.input_frame(node["inputs"][TICKET_INPUT], 1.0, secret)
        except Exception as err:
            return PromptOutcome(PromptState.ERROR, input_id, "TrickleInput", str(err))
        value = int(frame.image[0, 0, 0])
        self.inputs_taken.append(value)
        time.sleep(self.slow_on.get(value, 0.001))
        if value in self.interrupt_on:
            return PromptOutcome(PromptState.INTERRUPTED, input_id, "TrickleInput", "interrupted")
        if value in self.fail_on:
            node_id, node_type, message = self.fail_on[value]
            return PromptOutcome(PromptState.ERROR, node_id, node_type, message)
        if value in self.skip_output_on:
            return PromptOutcome(PromptState.SUCCESS)
        out_node = prompt[outputs[0]]
        bridge.deliver(out_node["inputs"][TICKET_INPUT], 255 - frame.image, secret)
        return PromptOutcome(PromptState.SUCCESS)


class FakeIngest:
    """Emits the given frames on a thread, ``interval_s`` apart, then ends (or blocks until closed)."""

    def __init__(self, frames: list[DecodedFrame], interval_s: float = 0.002, end: bool = True) -> None:
        self.frames = frames
        self.interval_s = interval_s
        self.end = end
        self.closed = threading.Event()

    async def run(self, on_frame, on_audio):
        def emit():
            for frame in self.frames:
                if self.closed.is_set():
                    return
                on_frame(frame)
                time.sleep(self.interval_s)
            if not self.end:
                self.closed.wait(30)

        await asyncio.to_thread(emit)

    async def close(self):
        self.closed.set()


class FakeEgress:
    """Records what would be encoded; 'writes' synchronously."""

    def __init__(self) -> None:
        self.written: list[tuple[int, int | None, int]] = []  # (pixel value, pts, frame index)
        self.finished = False
        self.closed = False
        self._on_written = None
        self._on_stage = None

    def start(self, on_written, on_failed=None, on_stage=None):
        self._on_written = on_written
        self._on_stage = on_stage

    def submit(self, frame, images):
        if self.closed:
            return False
        started = time.perf_counter()
        # (a warm-up placeholder is a batch of one [1, H, W, 3]; the fake runner's output is [H, W, 3])
        self.written.append((int(np.asarray(images).flat[0]), frame.pts, frame.index))
        encoded = time.perf_counter()
        if self._on_stage is not None:  # as the real egress reports them (its "publish" is synchronous)
            self._on_stage(Stage.ENCODE, encoded - started)
            self._on_stage(Stage.PUBLISH, time.perf_counter() - encoded)
        self._on_written(frame, images, frame.pts)
        return True

    def put_audio(self, packet):
        pass

    async def finish(self):
        self.finished = True

    async def close(self):
        self.closed = True
