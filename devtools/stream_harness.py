"""Drive a live stream from outside, for the end-to-end tests and the benchmarks: publish the synthetic
source over trickle, collect and decode a stream's output, call ComfyUI's stream API with aiohttp (never
blocking the loop that serves the caller's relay)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from comfy_trickle.media.decoder import StreamDecoder
from comfy_trickle.media.synthetic import SyntheticConfig, SyntheticSource
from comfy_trickle.media.types import AudioPacket, DecodedFrame
from comfy_trickle.trickle.publisher import TricklePublisher
from comfy_trickle.trickle.subscriber import TrickleSubscriber


def stream_channels(relay: Any, name: str) -> tuple[str, str]:
    """Create ``{name}-in`` and ``{name}-out`` on a running dev relay; returns (subscribe, publish) URLs."""
    relay.relay.create_channel(f"{name}-in", "video/MP2T")
    relay.relay.create_channel(f"{name}-out", "video/MP2T")
    return relay.channel_url(f"{name}-in"), relay.channel_url(f"{name}-out")


# a stream in these states holds one of ComfyUI's stream slots
ACTIVE_STATES = ("starting", "waiting", "running", "stopping")

SEED_PASSTHROUGH = {
    "1": {"inputs": {"images": ["2", 0]}, "class_type": "SaveTensor"},
    "2": {"inputs": {}, "class_type": "LoadTensor"},
}
INVERT = {
    "1": {"class_type": "TrickleInput", "inputs": {"stream_id": ""}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "TrickleOutput", "inputs": {"images": ["2", 0], "stream_id": ""}},
}
# two core nodes in a chain: invert twice = identity (but both run), then flip horizontally
TWO_NODE_CHAIN = {
    "1": {"class_type": "LoadTensor", "inputs": {}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "ImageFlip", "inputs": {"image": ["2", 0], "flip_method": "x-axis: vertically"}},
    "4": {"class_type": "SaveTensor", "inputs": {"images": ["3", 0]}},
}


@dataclass
class Output:
    frames: list[DecodedFrame]
    audio: list[AudioPacket]


async def publish_synthetic(
    url: str,
    frame_count: int,
    *,
    width: int = 128,
    height: int = 128,
    fps: float = 30.0,
    audio: str | None = None,
    realtime: bool = True,
    end: bool = True,
    before_segment: Callable[[int], Awaitable[None]] | None = None,
) -> SyntheticSource:
    """Publish ``frame_count`` frames of the test pattern (paced in real time), then end the channel.

    ``before_segment(frame_index)`` is awaited before each segment opens (e.g. a bench holding the source
    back); the time it takes shifts the real-time pacing of everything after it.
    """
    source = SyntheticSource(SyntheticConfig(width=width, height=height, fps=fps, audio=audio))
    publisher = TricklePublisher(url)
    started = time.monotonic()
    held_s = 0.0
    segment = None
    try:
        for chunk in source.chunks(frame_count):
            opens = chunk.starts_segment or segment is None
            if opens and before_segment is not None:
                waited = time.monotonic()
                await before_segment(chunk.frame_index)
                held_s += time.monotonic() - waited
            if realtime:
                delay = chunk.media_time + held_s - (time.monotonic() - started)
                if delay > 0:
                    await asyncio.sleep(delay)
            if opens:
                segment = await publisher.open_segment()
            await segment.write(chunk.data)
            if chunk.ends_segment:
                await segment.close()
                segment = None
        if segment is not None:
            await segment.close()
    finally:
        await publisher.close(delete_channel=end)
    return source


async def collect_output(url: str, timeout: float = 60.0) -> Output:
    """Subscribe to a stream's output channel from its first segment until it ends; decode everything."""
    frames: list[DecodedFrame] = []
    audio: list[AudioPacket] = []
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def finished(_error: BaseException | None) -> None:
        loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

    decoder = StreamDecoder(frames.append, audio.append, max_fps=None, on_finished=finished)
    decoder.start()
    subscriber = TrickleSubscriber(url, start_seq=0)

    async def read() -> None:
        async for segment in subscriber:
            # each segment is a TS of its own, as gateways read them: a track that starts in a later
            # segment (audio whose first packet came after the first frame) is seen from there on
            first = True
            while chunk := await segment.read_chunk():
                decoder.feed(chunk, segment_start=first)
                first = False

    try:
        await asyncio.wait_for(read(), timeout)
    finally:
        await subscriber.close()
        decoder.end_of_input()
        await asyncio.wait_for(done, 10)
    return Output(frames, audio)


@dataclass
class TimedOutput:
    """A stream's decoded output with when each frame was decoded here, and every segment's raw bytes."""

    frames: list[DecodedFrame]
    arrivals: list[float]  # time.monotonic() per frame
    segments: list[bytes]

    def longest_gap(self) -> float:
        """The longest time between two consecutive output frames' arrival (seconds)."""
        return max((b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)), default=0.0)


async def collect_output_timed(
    url: str, timeout: float = 60.0, output: TimedOutput | None = None
) -> TimedOutput:
    """Like ``collect_output``, also timing each frame's arrival and keeping each segment's bytes; pass
    ``output`` to watch frames arrive while it runs."""
    output = output if output is not None else TimedOutput([], [], [])
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def on_frame(frame: DecodedFrame) -> None:
        output.arrivals.append(time.monotonic())
        output.frames.append(frame)

    def finished(_error: BaseException | None) -> None:
        loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

    decoder = StreamDecoder(on_frame, None, max_fps=None, on_finished=finished)
    decoder.start()
    subscriber = TrickleSubscriber(url, start_seq=0)

    async def read() -> None:
        async for segment in subscriber:
            data = bytearray()
            while chunk := await segment.read_chunk():
                data += chunk
                decoder.feed(chunk)
            output.segments.append(bytes(data))

    try:
        await asyncio.wait_for(read(), timeout)
    finally:
        await subscriber.close()
        decoder.end_of_input()
        await asyncio.wait_for(done, 10)
    return output


class StreamAPI:
    """ComfyUI's stream routes over aiohttp."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.http = aiohttp.ClientSession(headers=headers)  # e.g. the bearer token of a protected server

    async def close(self) -> None:
        await self.http.close()

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        async with self.http.request(method, self.base_url + path, data=data) as response:
            text = await response.text()
            return response.status, (json.loads(text) if text else None)

    async def start(self, stream_id: str, subscribe_url: str, publish_url: str, workflow: dict,
                    width: int = 128, height: int = 128, **params: Any) -> tuple[int, Any]:
        return await self.call("POST", "/stream/start", {
            "gateway_request_id": stream_id,
            "subscribe_url": subscribe_url,
            "publish_url": publish_url,
            "params": {"width": width, "height": height, "prompt": workflow, **params},
        })

    async def update(self, stream_id: str, params: dict[str, Any]) -> tuple[int, Any]:
        """Live control: ``POST /stream/{id}/update`` with ``{"params": params}``."""
        return await self.call("POST", f"/stream/{stream_id}/update", {"params": params})

    async def status(self, stream_id: str) -> dict:
        status, body = await self.call("GET", f"/stream/{stream_id}/status")
        if status != 200:
            raise RuntimeError(f"status of {stream_id} answered {status}: {body}")
        return body

    async def wait_status(
        self, stream_id: str, predicate: Callable[[dict], bool], timeout: float = 60.0, poll_s: float = 0.05
    ) -> dict:
        """Poll the stream's status until ``predicate(status)``; raises TimeoutError with the last one."""
        deadline = time.monotonic() + timeout
        while True:
            body = await self.status(stream_id)
            if predicate(body):
                return body
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{stream_id}: condition not reached after {timeout} s: {body}")
            await asyncio.sleep(poll_s)

    async def wait_state(self, stream_id: str, states: set[str], timeout: float = 30.0) -> dict:
        return await self.wait_status(stream_id, lambda body: body["state"] in states, timeout, poll_s=0.1)

    async def stop(self, stream_id: str) -> tuple[int, Any]:
        return await self.call("POST", f"/stream/{stream_id}/stop")

    async def stop_active(self) -> None:
        """Stop every stream still active (starting, waiting, running): tests sharing one ComfyUI must
        leave no stream taking a slot."""
        _, streams = await self.call("GET", "/streams")
        for stream_id, status in (streams or {}).get("streams", {}).items():
            if status["state"] in ACTIVE_STATES:
                await self.stop(stream_id)
