"""ai-runner's ``PipelineStatus`` for one stream, and its state machine.

Shape: ``livepeer/ai-runner:runner/src/runner/live/process/status.py`` (``PipelineStatus``,
``InputStatus``, ``InferenceStatus``; timestamps in ms, md5 of the params JSON with sorted keys).
States and thresholds: ``runner/src/runner/live/process/process_guardian.py`` ``_compute_current_state``
(the comfyui values: 30 s after a params update before ERROR). fps over 10 s windows (``fps_log_interval``).

Our mapping of ai-runner's process onto a stream session: the session's ``starting`` is the pipeline
loading; ``stopped``/``completed`` is "no streamer"; ``error`` is ERROR (permanent, as in ai-runner).
"""

from __future__ import annotations

import collections
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

LOADING = "LOADING"
OFFLINE = "OFFLINE"
ONLINE = "ONLINE"
DEGRADED_INPUT = "DEGRADED_INPUT"
DEGRADED_INFERENCE = "DEGRADED_INFERENCE"
ERROR = "ERROR"

FPS_WINDOW_S = 10.0  # ai-runner fps_log_interval
LOADING_TIMEOUT_S = 180.0
OFFLINE_GRACE_S = 3.0
INPUT_IDLE_STOP_S = 60.0
INPUT_IDLE_ERROR_S = 90.0
PARAMS_SETTLE_S = 2.0
PARAMS_ERROR_S = 30.0  # comfyui's threshold (10 s for other pipelines)
OUTPUT_STALL_S = 5.0
RECENT_ERROR_S = 15.0
MIN_INPUT_FPS = 15.0
MAX_GAP_S = 2.0


def params_hash(params: dict[str, Any]) -> str:
    """ai-runner's ``last_params_hash``: md5 of the params as JSON with sorted keys."""
    return hashlib.md5(json.dumps(params, sort_keys=True).encode(), usedforsecurity=False).hexdigest()


def _ms(value: float | None) -> int | None:
    return int(value * 1000) if value is not None else None


@dataclass
class StreamPipelineStatus:
    """What one stream's status events report; fed by ``observe`` (counters) and the report hooks."""

    pipeline: str
    start_time: float = field(default_factory=time.time)
    state: str = LOADING
    last_state_update_time: float | None = None
    last_input_time: float | None = None
    last_output_time: float | None = None
    input_fps: float = 0.0
    output_fps: float = 0.0
    last_params: dict[str, Any] | None = None
    last_params_hash: str | None = None
    last_params_update_time: float | None = None
    last_error: str | None = None
    last_error_time: float | None = None
    ready_time: float | None = None
    running: bool = False
    finished_in_error: bool = False
    _frames_in: int = 0
    _frames_out: int = 0
    _samples: collections.deque[tuple[float, int, int]] = field(default_factory=collections.deque)
    _params_sent: bool = False

    def params_updated(self, params: dict[str, Any], now: float | None = None) -> None:
        self.last_params = params
        self.last_params_hash = params_hash(params)
        self.last_params_update_time = time.time() if now is None else now
        self._params_sent = False

    def error_reported(self, message: str, now: float | None = None) -> None:
        self.last_error = message
        self.last_error_time = time.time() if now is None else now

    def observe(self, stream_state: str, counters: dict[str, Any], now: float | None = None) -> str:
        """Take a status snapshot of the session (``StreamSession.status()``) and recompute the state."""
        now = time.time() if now is None else now
        frames_in = int(counters.get("frames_in") or 0)
        # inference output: placeholders sent while a workflow warms up (streams.warmup) are not
        frames_out = int(counters.get("frames_out") or 0) - int(counters.get("frames_covered") or 0)
        if frames_in > self._frames_in:
            self.last_input_time = now
        if frames_out > self._frames_out:
            self.last_output_time = now
        self._frames_in, self._frames_out = frames_in, frames_out
        self._samples.append((now, frames_in, frames_out))
        while len(self._samples) > 2 and self._samples[1][0] <= now - FPS_WINDOW_S:
            self._samples.popleft()
        first_t, first_in, first_out = self._samples[0]
        span = now - first_t
        if span > 0:
            self.input_fps = round((frames_in - first_in) / span, 2)
            self.output_fps = round((frames_out - first_out) / span, 2)
        if stream_state == "running" and self.ready_time is None:
            self.ready_time = now
        self.running = stream_state in ("starting", "running")
        self.finished_in_error = stream_state == "error"
        self._set_state(self._compute(stream_state, now), now)
        return self.state

    def _set_state(self, state: str, now: float) -> None:
        if state != self.state:
            self.state = state
            self.last_state_update_time = now

    def _compute(self, stream_state: str, now: float) -> str:
        """``process_guardian._compute_current_state``, with the session state in place of the process."""
        # ai-runner keeps ERROR forever (its process is restarted); a stream here recovers from a
        # stall (a user's long prompt), only a stream that ended in error stays ERROR
        if stream_state == "error":
            return ERROR
        since_input = now - (self.last_input_time or self.start_time)
        since_output = now - (self.last_output_time or 0)
        load_time = max(self.last_params_update_time or 0, self.ready_time or 0, self.start_time)
        since_load = max(0.0, now - load_time - 2)
        if stream_state == "starting":
            return ERROR if since_load > LOADING_TIMEOUT_S else LOADING
        if stream_state == "stopping":
            return DEGRADED_INPUT  # ai-runner's grace while a streamer shuts down
        if stream_state != "running":
            # the stream ended: its last status says so (ai-runner's 3 s DEGRADED_INPUT grace
            # (OFFLINE_GRACE_S) is for a process that stays up; this stream's events end here)
            return OFFLINE
        if since_input > INPUT_IDLE_STOP_S:
            return DEGRADED_INPUT if since_input < INPUT_IDLE_ERROR_S else ERROR
        if not since_output < since_load:
            if since_load < PARAMS_SETTLE_S:
                return ONLINE
            if since_input > since_load:
                return DEGRADED_INPUT
            return DEGRADED_INFERENCE if since_load < PARAMS_ERROR_S else ERROR
        if since_output > since_input + 1 and since_output > OUTPUT_STALL_S:
            return ERROR
        if (self.last_error_time or 0) > now - RECENT_ERROR_S:
            return DEGRADED_INFERENCE
        if since_input > MAX_GAP_S or self.input_fps < MIN_INPUT_FPS:
            return DEGRADED_INPUT
        if since_output > MAX_GAP_S or self.output_fps < min(10.0, 0.8 * self.input_fps):
            return DEGRADED_INFERENCE
        return ONLINE

    def to_event(self, last_status_timestamp: float | None) -> dict[str, Any]:
        """The ``status`` event body; ``last_params`` goes out once per update and then as null, as
        ai-runner does (``get_status(clear_transient=True)``) so the gateway coalesces it."""
        params = None if self._params_sent else self.last_params
        self._params_sent = True
        return {
            "type": "status",
            "pipeline": self.pipeline,
            "start_time": _ms(self.start_time),
            "state": self.state,
            "last_state_update_time": _ms(self.last_state_update_time),
            "input_status": {"last_input_time": _ms(self.last_input_time), "fps": self.input_fps},
            "inference_status": {
                "last_output_time": _ms(self.last_output_time),
                "fps": self.output_fps,
                "last_params_update_time": _ms(self.last_params_update_time),
                "last_params": params,
                "last_params_hash": self.last_params_hash,
                "last_error_time": _ms(self.last_error_time),
                "last_error": self.last_error,
                "last_restart_time": None,
                "last_restart_logs": None,
                "restart_count": 0,
            },
            "last_status_timestamp": _ms(last_status_timestamp) or _ms(self.start_time),
        }
