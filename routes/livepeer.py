"""Livepeer worker routes on ComfyUI's server (mirrored under ``/api``), all behind the bearer token.

- ``GET /health`` -> ``{"status": LOADING|IDLE|OK|ERROR, ...}`` (ai-runner ``runner/routes/health.py``)
- ``GET /version`` -> ``{"pipeline", "model_id", "version"}`` (ai-runner ``runner/routes/version.py``)
- ``GET /hardware/info``, ``/hardware/stats`` -> ``{"pipeline", "model_id", "gpu_info"|"gpu_stats"}``
  (ai-runner ``runner/routes/hardware.py``)
- ``GET /metrics`` -> Prometheus text (``livepeer.metrics``)
- ``POST /stream/stop`` -> the stream's final status, its id in ``X-Stream-Id``
  (go-livepeer ``byoc/stream_orchestrator.go`` ``StopStream`` and ``createWorkerReq``)
- ``GET /stream/status`` -> one stream (``X-Stream-Id`` or ``?stream_id=``) or a summary of all

ComfyUI 0.3.75 serves none of these paths itself (its ``server.py`` has ``/system_stats``, ``/queue`` ...).
The BYOC ``POST /stream/start`` is the stream route itself (``routes/streams.py``), fed through
``LivepeerStartHooks``; ``POST /stream/params`` belongs to the live-update engine.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..livepeer.byoc import adapt_start_body, stream_id_of
from ..livepeer.hardware import hardware_info, hardware_stats
from ..livepeer.metrics import CONTENT_TYPE, WorkerMetrics
from ..livepeer.worker import LivepeerWorker
from ..streams.errors import ApiError, StreamNotFound
from .responses import json_errors
from .security import read_json_body, requires_token
from .settings import TrickleSettings

PACK_VERSION = "0.1.0"


class LivepeerStartHooks:
    """What the stream start route calls: body mapping before parsing, the worker once started."""

    def __init__(self, worker: LivepeerWorker, metrics: WorkerMetrics) -> None:
        self.worker = worker
        self.metrics = metrics

    def adapt_start_body(self, headers: Any, body: Any) -> Any:
        return adapt_start_body(headers, body)

    def stream_started(self, config: Any, received_at: float) -> None:
        self.worker.stream_started(config, received_at)
        try:
            self.metrics.attach(config.stream_id, self.worker.registry.session(config.stream_id).counters)
        except (StreamNotFound, AttributeError):
            pass


class LivepeerRoutes:
    def __init__(self, worker: LivepeerWorker, settings: TrickleSettings, *, model_id: str = "comfyui",
                 version: str = PACK_VERSION) -> None:
        self.worker = worker
        self.settings = settings
        self.metrics = WorkerMetrics(worker)
        self.start_hooks = LivepeerStartHooks(worker, self.metrics)
        self.model_id = model_id
        self.version = version

    def setup_routes(self, routes: web.RouteTableDef) -> None:
        routes.get("/health")(self.health)
        routes.get("/version")(self.version_info)
        routes.get("/hardware/info")(self.hardware_info)
        routes.get("/hardware/stats")(self.hardware_stats)
        routes.get("/metrics")(self.metrics_text)
        routes.post("/stream/stop")(self.byoc_stop)
        routes.get("/stream/status")(self.byoc_status)

    @json_errors
    @requires_token
    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(self.worker.health())

    @json_errors
    @requires_token
    async def version_info(self, request: web.Request) -> web.Response:
        return web.json_response({"pipeline": self.worker.pipeline, "model_id": self.model_id,
                                  "version": self.version})

    @json_errors
    @requires_token
    async def hardware_info(self, request: web.Request) -> web.Response:
        return web.json_response(await hardware_info(self.worker.pipeline, self.model_id))

    @json_errors
    @requires_token
    async def hardware_stats(self, request: web.Request) -> web.Response:
        return web.json_response(await hardware_stats(self.worker.pipeline, self.model_id))

    @json_errors
    @requires_token
    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    @json_errors
    @requires_token
    async def byoc_stop(self, request: web.Request) -> web.Response:
        """BYOC stop: the orchestrator names the stream in ``X-Stream-Id``; the body is the gateway's
        (often empty), so a missing or non-JSON body is fine."""
        body: Any = None
        if request.can_read_body:
            try:
                body = await read_json_body(request, self.settings.limits.max_request_bytes)
            except ApiError as err:
                if err.http_status == 413:
                    raise
        stream_id = stream_id_of(request.headers, body)
        if not stream_id:
            raise ApiError(400, "Missing stream id: send the X-Stream-Id header (or gateway_request_id)",
                           {"field": "X-Stream-Id"})
        final = await self.worker.registry.stop(stream_id)
        return web.json_response({"status": "success", "message": f"Stream {stream_id} stopped successfully",
                                  **final})

    @json_errors
    @requires_token
    async def byoc_status(self, request: web.Request) -> web.Response:
        stream_id = stream_id_of(request.headers) or request.query.get("stream_id", "").strip()
        if stream_id:
            status = self.worker.registry.status(stream_id)
            pipeline_state = self.worker.pipeline_states().get(stream_id)
            return web.json_response({**status, "pipeline_state": pipeline_state})
        return web.json_response({
            "health": self.worker.health()["status"],
            "free_slots": self.worker.free_slots(),
            "pipeline_states": self.worker.pipeline_states(),
            "time": time.time(),
        })
