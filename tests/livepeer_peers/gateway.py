"""A gateway peer that drives a stream the way go-livepeer does, against our relay and a real worker.

What it copies, and from where:
- channel names ``{mid}``, ``{mid}-out``, ``{mid}-control``, ``{mid}-events`` (``{mid}-data``, MIME
  ``application/jsonl``): ``go-livepeer:server/ai_http.go`` and ``byoc/stream_orchestrator.go``
  (``StartStream``: ``pubUrl + "-out"`` / ``"-control"`` / ``"-events"`` / ``"-data"``);
- the runner body ``{subscribe_url, publish_url, control_url, events_url, gateway_request_id, manifest_id,
  stream_id, model_id, params}``: ``ai/worker/runner.gen.go LiveVideoToVideoParams`` (ai-runner
  ``routes/live_video_to_video.py``); the BYOC body (``gateway_request_id``, the channel urls, the
  gateway's keys merged) with ``X-Stream-Id`` and ``Authorization: Bearer``: ``byoc/stream_orchestrator.go``;
- control: the params snapshot written once when the control publisher starts, then ``{"keep":"alive"}``
  every 10 s: ``server/ai_live_video.go startControlPublish`` (the snapshot is re-sent with every
  keep-alive here, as the brief asks: idempotent on the worker);
- events: read one JSON document per segment; the stream fails after 30 s without an event, checked every
  10 s: ``server/ai_live_video.go startEventsSubscribe`` (``eventCheckInterval``, ``maxEventGap``).
Intervals are parameters so tests may shorten them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from comfy_trickle.trickle.protocol import SEQ_NEXT
from comfy_trickle.trickle.publisher import TricklePublisher
from comfy_trickle.trickle.subscriber import TrickleSubscriber

KEEPALIVE_S = 10.0
EVENT_CHECK_S = 10.0
MAX_EVENT_GAP_S = 30.0


@dataclass
class ReceivedEvent:
    at: float  # time.monotonic() on arrival
    envelope: dict[str, Any]

    @property
    def event(self) -> dict[str, Any]:
        return self.envelope.get("event") or {}

    @property
    def type(self) -> str:
        return str(self.event.get("type"))


@dataclass
class GatewayStream:
    mid: str
    urls: dict[str, str]
    params: dict[str, Any]
    events: list[ReceivedEvent] = field(default_factory=list)
    silence_failure: str | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def of_type(self, event_type: str) -> list[ReceivedEvent]:
        return [e for e in self.events if e.type == event_type]

    def status_gaps(self) -> list[float]:
        times = [e.at for e in self.of_type("status")]
        return [b - a for a, b in zip(times, times[1:], strict=False)]

    async def wait_for(self, predicate: Any, timeout: float) -> ReceivedEvent:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if predicate(event):
                    return event
            if self.silence_failure:
                raise AssertionError(self.silence_failure)
            await asyncio.sleep(0.1)
        raise AssertionError(f"no matching event within {timeout} s; got {[e.type for e in self.events]}")


class GatewayPeer:
    def __init__(self, relay: Any, worker_url: str, *, token: str = "", keepalive_s: float = KEEPALIVE_S,
                 event_check_s: float = EVENT_CHECK_S, max_event_gap_s: float = MAX_EVENT_GAP_S) -> None:
        self.relay = relay
        self.worker_url = worker_url.rstrip("/")
        self.token = token
        self.keepalive_s = keepalive_s
        self.event_check_s = event_check_s
        self.max_event_gap_s = max_event_gap_s
        self.streams: list[GatewayStream] = []
        self._http = aiohttp.ClientSession()

    def create_channels(self, mid: str, data: bool = False) -> dict[str, str]:
        names = {"subscribe_url": (mid, "video/MP2T"), "publish_url": (f"{mid}-out", "video/MP2T"),
                 "control_url": (f"{mid}-control", "application/json"),
                 "events_url": (f"{mid}-events", "application/json")}
        if data:
            names["data_url"] = (f"{mid}-data", "application/jsonl")
        urls = {}
        for key, (name, mime) in names.items():
            self.relay.relay.create_channel(name, mime)
            urls[key] = self.relay.channel_url(name)
        return urls

    async def start(self, mid: str, params: dict[str, Any], *, byoc: bool = False, data: bool = False,
                    worker_url: str | None = None) -> tuple[int, Any, GatewayStream]:
        """Create the channels, start reading events, POST the start; returns (status, body, stream)."""
        urls = self.create_channels(mid, data)
        stream = GatewayStream(mid, urls, params)
        # events first: the gateway subscribes before the runner's first event can be lost
        stream.tasks.append(asyncio.create_task(self._read_events(stream)))
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if byoc:
            body: dict[str, Any] = {"gateway_request_id": mid, **urls, "params": params}
            headers["X-Stream-Id"] = mid
        else:
            body = {**urls, "gateway_request_id": mid, "manifest_id": f"manifest-{mid}",
                    "stream_id": f"str-{mid}", "model_id": "", "params": params}
        async with self._http.post(f"{(worker_url or self.worker_url)}/stream/start", json=body,
                                   headers=headers) as response:
            status = response.status
            answer = await response.json(content_type=None)
        if status == 200:
            stream.tasks.append(asyncio.create_task(self._control(stream)))
            stream.tasks.append(asyncio.create_task(self._watch_silence(stream)))
        else:
            await self._cancel(stream)
        self.streams.append(stream)
        return status, answer, stream

    async def _control(self, stream: GatewayStream) -> None:
        publisher = TricklePublisher(stream.urls["control_url"], mime_type="application/json")
        try:
            await publisher.write_segment(json.dumps(stream.params).encode())
            while True:
                await asyncio.sleep(self.keepalive_s)
                await publisher.write_segment(b'{"keep":"alive"}')
                await publisher.write_segment(json.dumps(stream.params).encode())
        finally:
            await publisher.close(delete_channel=False)

    async def _read_events(self, stream: GatewayStream) -> None:
        subscriber = TrickleSubscriber(stream.urls["events_url"], start_seq=SEQ_NEXT)
        try:
            while True:
                segment = await subscriber.next_segment()
                if segment is None:
                    return
                raw = await segment.read_all()
                if raw.strip():
                    stream.events.append(ReceivedEvent(time.monotonic(), json.loads(raw)))
        finally:
            await subscriber.close()

    async def _watch_silence(self, stream: GatewayStream) -> None:
        while True:
            await asyncio.sleep(self.event_check_s)
            last = stream.events[-1].at if stream.events else None
            if last is None or time.monotonic() - last > self.max_event_gap_s:
                stream.silence_failure = f"stream {stream.mid}: timeout waiting for events"
                return

    async def _cancel(self, stream: GatewayStream) -> None:
        for task in stream.tasks:
            task.cancel()
        for task in stream.tasks:
            with contextlib.suppress(BaseException):
                await task

    async def close(self) -> None:
        for stream in self.streams:
            await self._cancel(stream)
        await self._http.close()
