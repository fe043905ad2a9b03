"""Live control: changing a running stream's params (workflow, size, any start param) without stopping it.

One engine, three doors (REST ``POST /stream/{id}/update``, BYOC ``POST /stream/params``, the control
channel): each calls ``UpdateEngine.update``.

- An update is parsed exactly as a start request is (``config.parse_start_request`` on the stream's start
  body with the new params) and validated by ComfyUI (the registry's validate step) **before** anything
  changes. An invalid one raises (400 with ``node_errors``) and the running generation is untouched.
- A valid one becomes the *pending* generation. The pump picks it up between two frames (``take``), so
  every frame is processed by exactly one generation. Only the newest pending generation is kept: a burst
  of updates coalesces to the newest (the ones it replaced count as ``updates_superseded``).
- The same params again (compared with the newest accepted generation) are a no-op: counted, no new
  generation.
- Every generation keeps the stream's node-id prefix, so a node whose inputs did not change keeps its
  ComfyUI cache key and is not run again (model loaders, encoders of unchanged text).

``REST`` updates merge onto the current params (fields not given keep their value); control-channel
messages are full snapshots (ai-runner semantics): params not in the snapshot are dropped, except
``prompt``, ``width`` and ``height``, which keep their value when missing (we have no default workflow to
fall back to, unlike ai-runner).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .config import StreamConfig, parse_start_request
from .errors import ApiError
from .limits import DEFAULT_LIMITS, StreamLimits
from .workflow import PromptBuilder

logger = logging.getLogger(__name__)

# kept from the current params when a control snapshot leaves them out (see the module docstring)
SNAPSHOT_KEPT = ("prompt", "width", "height")

UPDATE_COUNTERS = ("updates_applied", "updates_noop", "updates_rejected", "updates_superseded")
# (the new config) -> the builder of its validated workflow; raises WorkflowInvalid (400)
BuilderFactory = Callable[[StreamConfig], Awaitable[PromptBuilder]]


@dataclass(frozen=True, slots=True)
class Generation:
    """One accepted set of params: its number (1 = the start), config and prompt builder."""

    number: int
    config: StreamConfig
    builder: PromptBuilder


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    """What an update did: the generation that now carries these params, and whether it is new."""

    generation: int
    applied: bool  # False: the same params again (no-op)
    config: StreamConfig


def start_params(config: StreamConfig) -> dict[str, Any]:
    """The params a start request with ``config`` would carry (the inverse of ``parse_start_request``)."""
    params: dict[str, Any] = {**config.params, "width": config.width, "height": config.height,
                              "prompt": config.workflow}
    if config.max_backlog_s is not None:
        params["max_backlog_s"] = config.max_backlog_s
    return params


def start_body(config: StreamConfig, params: dict[str, Any]) -> dict[str, Any]:
    """A start request body for ``config``'s stream with ``params`` (what an update is checked as)."""
    return {
        "gateway_request_id": config.stream_id,
        "subscribe_url": config.subscribe_url,
        "publish_url": config.publish_url,
        "control_url": config.control_url,
        "events_url": config.events_url,
        "manifest_id": config.manifest_id,
        "stream_id": config.runner_stream_id,
        "params": params,
    }


def merged_params(current: StreamConfig, given: dict[str, Any], *, snapshot: bool) -> dict[str, Any]:
    """The params after an update: ``given`` over the current ones (REST), or ``given`` as a full snapshot
    (control channel) that keeps only ``SNAPSHOT_KEPT`` when they are missing."""
    now = start_params(current)
    if not snapshot:
        return {**now, **given}
    kept = {name: now[name] for name in SNAPSHOT_KEPT if name not in given and name in now}
    return {**kept, **given}


def same_params(a: StreamConfig, b: StreamConfig) -> bool:
    """True when two configs would run the same generation (the trickle URLs never change)."""
    return (a.workflow, a.width, a.height, a.params, a.max_backlog_s) == (
        b.workflow, b.width, b.height, b.params, b.max_backlog_s
    )


class UpdateEngine:
    """The generations of one stream (all methods on the event loop; ``take`` from the pump)."""

    def __init__(self, first: Generation, make_builder: BuilderFactory,
                 limits: StreamLimits = DEFAULT_LIMITS) -> None:
        self.current = first
        self.pending: Generation | None = None
        self.applied_at: float | None = None  # unix seconds the current generation took its first frame
        self.limits = limits
        self._make_builder = make_builder
        self._next_number = first.number + 1
        self._lock = asyncio.Lock()  # one validation at a time: accepted generations stay in order
        self.counts = dict.fromkeys(UPDATE_COUNTERS, 0)
        self.first_output_seen: set[int] = set()  # generations that produced an output frame

    @property
    def newest(self) -> Generation:
        return self.pending or self.current

    async def update(self, given: Any, *, snapshot: bool = False,
                     limits: StreamLimits | None = None) -> UpdateOutcome:
        """Check and accept new params (see the module docstring); raises ``ApiError`` (400) when invalid."""
        if not isinstance(given, dict):
            self.counts["updates_rejected"] += 1
            raise ApiError(400, "Field params must be an object", {"field": "params"})
        async with self._lock:
            base = self.newest
            try:
                params = merged_params(base.config, given, snapshot=snapshot)
                config = parse_start_request(start_body(base.config, params), limits or self.limits)
                if same_params(config, base.config):
                    self.counts["updates_noop"] += 1
                    return UpdateOutcome(base.number, False, base.config)
                builder = await self._make_builder(config)
            except ApiError as err:
                self.counts["updates_rejected"] += 1
                logger.info("stream %s: update rejected: %s", base.config.stream_id, err.message)
                raise
            generation = Generation(self._next_number, config, builder)
            self._next_number += 1
            if self.pending is not None:
                self.counts["updates_superseded"] += 1
            self.pending = generation
            logger.info("stream %s: generation %d accepted", config.stream_id, generation.number)
            return UpdateOutcome(generation.number, True, config)

    def take(self) -> Generation | None:
        """Between two frames: the newest accepted generation if one waits (it becomes current), else None."""
        generation, self.pending = self.pending, None
        if generation is None:
            return None
        self.current = generation
        self.applied_at = time.time()
        self.counts["updates_applied"] += 1
        return generation

    def warming(self) -> bool:
        """The current generation has not produced an output frame yet (start or after a switch)."""
        return self.current.number not in self.first_output_seen

    def output_seen(self, number: int) -> None:
        """A frame of generation ``number`` reached the output (any thread: a set add is atomic)."""
        self.first_output_seen.add(number)

    def status(self) -> dict[str, Any]:
        """The status keys of live control (``generation``, when applied, ``update_pending``)."""
        return {
            "generation": self.current.number,
            "generation_applied_at": self.applied_at,
            "update_pending": self.pending is not None,
        }
