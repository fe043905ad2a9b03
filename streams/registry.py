"""The per-process table of streams: start (validated first), stop, status, preview, stop_all.

``StreamRegistry`` is ComfyUI-free: it reaches ComfyUI through a ``PromptRunner`` and reports state
changes through an injected ``notifier(event, payload)`` (``PromptServer.send_sync`` in production).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import Iterator
from typing import Any

from ..trickle.address_guard import AddressCheck
from .bridge import PROCESS_BRIDGES, BridgeDirectory
from .config import StreamConfig
from .context import FramePreparer, Notifier, SessionContext
from .errors import ApiError, StreamExists, StreamLimitReached, StreamNotFound, WorkflowInvalid
from .executor import PromptRunner
from .fairness import ExecutorFairness
from .gc_pause import PROCESS_GC_FREEZE, CollectorFreeze
from .heap import CoalescedRelease
from .input_wait import input_wait_of
from .keepalive import CacheKeepAlive
from .limits import DEFAULT_BACKLOG_S, DEFAULT_MAX_STREAMS, StreamLimits
from .media_io import MediaFactory
from .session import StreamSession
from .state import StreamState
from .updates import Generation, UpdateEngine
from .workflow import INPUT_CLASS, OUTPUT_CLASS, STREAM_INPUT, LiveWorkflow, PromptBuilder, prepare_workflow

logger = logging.getLogger(__name__)

REMOVED_EVENT = "trickle.removed"
# finished streams stay queryable (final status) until this many newer ones finished
KEEP_FINISHED = 16


class StreamRegistry:
    """Starts and tracks streams; at most ``max_streams`` run at once."""

    def __init__(
        self,
        runner: PromptRunner,
        *,
        max_streams: int = DEFAULT_MAX_STREAMS,
        notifier: Notifier | None = None,
        media_factory: MediaFactory | None = None,
        bridges: BridgeDirectory = PROCESS_BRIDGES,
        max_backlog_s: float = DEFAULT_BACKLOG_S,
        prepare_frame: FramePreparer | None = None,
        gc_freeze: CollectorFreeze = PROCESS_GC_FREEZE,
        address_check: AddressCheck | None = None,
        newest_frame_reads: bool = True,
        keepalive: CacheKeepAlive | None = None,
    ) -> None:
        self.max_streams = max_streams
        self._address_check = address_check  # the host allowlist at connect time (trickle.address_guard)
        self.keepalive = keepalive if keepalive is not None else CacheKeepAlive()
        self._gc_freeze = gc_freeze
        self._memory_release = CoalescedRelease()
        self._media_factory = media_factory
        self._max_backlog_s = max_backlog_s
        self._context = SessionContext(
            runner=runner,
            bridges=bridges,
            notifier=notifier,
            prepare_frame=prepare_frame,
            inert_nodes=self._inert_nodes_for,
            on_finished=self._session_finished,
            newest_frame_reads=newest_frame_reads,
            fairness=ExecutorFairness(),
            carried_changed=self.keepalive.changed,
        )
        self._sessions: dict[str, StreamSession] = {}
        self._finished_order: collections.deque[str] = collections.deque()
        self._reserved: set[str] = set()  # ids whose start is being validated
        self._prefixes = itertools.count(1)

    # --- public API -----------------------------------------------------------------------------------------
    async def start(self, config: StreamConfig) -> dict[str, Any]:
        """Validate ``config.workflow`` with ComfyUI's validation, then start the stream.

        Raises ``StreamExists`` (409), ``StreamLimitReached`` (429) or ``WorkflowInvalid`` (400) before
        anything starts. Returns the new stream's status object.
        """
        with self._reservation(config.stream_id) as replaced:
            max_backlog_s = self._backlog_of(config)
            input_wait_s = input_wait_of(config.params)
            live = await self._validated_workflow(config)
            session = self._build_session(config, live, max_backlog_s, input_wait_s)
            await self._launch(session, replaced)
        return session.status()

    async def update(self, stream_id: str, params: Any, *, snapshot: bool = False,
                     limits: StreamLimits | None = None) -> dict[str, Any]:
        """Live control: check ``params`` as a start is checked and hand them to the running stream (see
        ``streams.updates``). 404 unknown, 409 not running, 400 invalid (the old workflow keeps running).
        Returns ``{generation, applied, config}``."""
        session = self._get(stream_id)
        if session.updates is None or session.state is not StreamState.RUNNING:
            raise ApiError(409, f"Stream {stream_id!r} is not running ({session.state.value}).",
                           {"state": session.state.value})
        try:
            outcome = await session.updates.update(params, snapshot=snapshot, limits=limits)
        except ApiError as err:
            session.report_error("params", f"update rejected: {err.message}")  # the events channel
            raise
        if outcome.applied and isinstance(params, dict):
            session.report_params(params)
        config = outcome.config.to_json()
        return {"generation": outcome.generation, "applied": outcome.applied, "config": config}

    def running_ids(self) -> list[str]:
        """Ids of the running streams (BYOC's ``/stream/params`` names none when only one runs)."""
        return [i for i, s in self._sessions.items() if s.state is StreamState.RUNNING]

    async def stop(self, stream_id: str) -> dict[str, Any]:
        """Stop a stream (returns within ~2 s) and return its final status; a finished stream's final
        status is returned as is."""
        return await self._get(stream_id).stop()

    def config(self, stream_id: str) -> StreamConfig:
        """The config stream ``stream_id`` was started with (``StreamNotFound`` when unknown)."""
        return self._get(stream_id).config

    async def restart(self, stream_id: str) -> dict[str, Any]:
        """Stop the stream if it runs, then start it again with the same config (id, URLs, workflow,
        params); answers the new run's status. Errors as ``start`` (409 when a concurrent restart won)."""
        config = self._get(stream_id).config
        await self.stop(stream_id)
        return await self.start(config)

    def forget(self, stream_id: str) -> dict[str, Any]:
        """Drop a finished stream from the table (sends ``trickle.removed``) and return its final status;
        ``StreamExists`` (409) while it is still active."""
        session = self._get(stream_id)
        if session.state.active or stream_id in self._reserved:
            raise StreamExists(f"Stream {stream_id!r} is still running; stop it before dismissing it.")
        final = session.status()
        self._forget(stream_id)
        return final

    def status(self, stream_id: str) -> dict[str, Any]:
        """One stream's status object (``StreamNotFound`` when unknown)."""
        return self._get(stream_id).status()

    def brief(self, stream_id: str) -> dict[str, Any]:
        """One stream's state and frame counts (``StreamSession.brief``: what periodic samplers read, at
        a fraction of a full status's cost; ``StreamNotFound`` when unknown)."""
        return self._get(stream_id).brief()

    def active_count(self) -> int:
        """How many streams are active (starting, waiting, running or stopping)."""
        return sum(1 for session in self._sessions.values() if session.state.active)

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Every known stream's status object, by id."""
        return {stream_id: session.status() for stream_id, session in self._sessions.items()}

    def latest_output(self, stream_id: str) -> tuple[Any, int] | None:
        """Newest output frame of a stream (RGB uint8 ``[H, W, 3]``, pts), None before the first one."""
        return self._get(stream_id).latest_output()

    def session(self, stream_id: str) -> StreamSession:
        """The session object (tests and benchmarks; ``StreamNotFound`` when unknown)."""
        return self._get(stream_id)

    async def stop_all(self) -> None:
        """Stop every active stream (registered on the server's shutdown)."""
        active = [s for s in self._sessions.values() if s.state.active]
        if active:
            await asyncio.gather(*(s.stop() for s in active), return_exceptions=True)

    # --- internals ------------------------------------------------------------------------------------------
    def _get(self, stream_id: str) -> StreamSession:
        session = self._sessions.get(stream_id)
        if session is None:
            raise StreamNotFound(f"No stream with id {stream_id!r}.")
        return session

    @contextlib.contextmanager
    def _reservation(self, stream_id: str) -> Iterator[StreamSession | None]:
        """Hold ``stream_id`` (and a place under ``max_streams``) while its start is validated and built;
        yields the finished session of that id that the new one replaces, if any."""
        existing = self._sessions.get(stream_id)
        if stream_id in self._reserved or (existing is not None and existing.state.active):
            raise StreamExists(f"Stream {stream_id!r} is already running.")
        # a stream being launched is both reserved and an active session: count each id once
        if len(self._active_ids() | self._reserved) >= self.max_streams:
            raise StreamLimitReached(
                f"{self.max_streams} streams are already running (the limit); stop one first."
            )
        self._reserved.add(stream_id)
        try:
            yield existing
        finally:
            self._reserved.discard(stream_id)

    async def _validated_workflow(self, config: StreamConfig) -> LiveWorkflow:
        """The stream's workflow with its live nodes bound to the stream, as ComfyUI validated it."""
        live = prepare_workflow(config.workflow)
        nodes = live.nodes
        for node_id in (*live.input_ids, *live.output_ids):
            nodes[node_id]["inputs"][STREAM_INPUT] = config.stream_id
        result = await self._context.runner.validate(nodes, live.output_ids)
        if not result.ok or result.node_errors:
            raise WorkflowInvalid(_validation_message(result.error, result.node_errors), result.node_errors)
        return dataclasses.replace(live, nodes=result.workflow or nodes)

    def _build_session(
        self, config: StreamConfig, live: LiveWorkflow, max_backlog_s: float, input_wait_s: float
    ) -> StreamSession:
        if self._media_factory is None:
            from .trickle_io import trickle_media

            ingest, egress = trickle_media(config, max_backlog_s, input_wait_s, self._address_check,
                                           self._context.fairness.stream_count)
        else:
            ingest, egress = self._media_factory(config)
        prefix = f"ct{next(self._prefixes)}_"
        builder = PromptBuilder(live, prefix, config.stream_id)

        async def make_builder(new: StreamConfig) -> PromptBuilder:
            # the same prefix in every generation: unchanged nodes keep their ComfyUI cache keys
            return PromptBuilder(await self._validated_workflow(new), prefix, new.stream_id)

        updates = UpdateEngine(Generation(1, config, builder), make_builder)
        return StreamSession(
            config, self._context, builder=builder, ingest=ingest, egress=egress, max_backlog_s=max_backlog_s,
            updates=updates,
        )

    async def _launch(self, session: StreamSession, replaced: StreamSession | None) -> None:
        """Enter the session into the table (in place of ``replaced``) and start it."""
        stream_id = session.stream_id
        if replaced is not None:
            self._forget(stream_id)
        self._sessions[stream_id] = session
        # read at each use, so a workflow update of the session is carried from its next frame on
        self.keepalive.add_stream(stream_id, lambda: session.builder.frame_independent_nodes())
        self._context.fairness.add(stream_id)
        # short GC pauses while streams run (see gc_pause.py); released in _session_finished
        self._gc_freeze.hold(session)
        try:
            await session.start()
        except Exception:
            logger.exception("stream %s: start failed", stream_id)
            await session.stop()
            self._sessions.pop(stream_id, None)
            self.keepalive.remove_stream(stream_id)
            self._context.fairness.remove(stream_id)
            self._gc_freeze.release(session)
            raise

    def _backlog_of(self, config: StreamConfig) -> float:
        """Seconds of video the hand-off may hold before dropping the oldest (lower: less latency under
        load; higher: fewer drops): ``params.max_backlog_s``, checked by config parsing, or our default."""
        return self._max_backlog_s if config.max_backlog_s is None else config.max_backlog_s

    def _active_ids(self) -> set[str]:
        return {stream_id for stream_id, s in self._sessions.items() if s.state.active}

    def _inert_nodes_for(self, stream_id: str) -> dict[str, Any]:
        """What this stream's prompts carry inert (cache keep-alive, see ``streams.keepalive``)."""
        return self.keepalive.for_stream(stream_id)

    def _session_finished(self, session: StreamSession) -> None:
        if self._sessions.get(session.stream_id) is session:
            self.keepalive.remove_stream(session.stream_id)
            self._context.fairness.remove(session.stream_id)
        self._gc_freeze.release(session)
        # collect its cyclic garbage and give free heap pages back (off the loop, one at a time; heap.py)
        if self._memory_release.request():
            asyncio.get_running_loop().run_in_executor(None, self._memory_release.run)
        self._finished_order.append(session.stream_id)
        while len(self._finished_order) > KEEP_FINISHED:
            old_id = self._finished_order.popleft()
            old = self._sessions.get(old_id)
            if old is not None and not old.state.active:
                self._forget(old_id)

    def _forget(self, stream_id: str) -> None:
        self._sessions.pop(stream_id, None)
        with_id = [i for i in self._finished_order if i != stream_id]
        self._finished_order.clear()
        self._finished_order.extend(with_id)
        self._context.notify(REMOVED_EVENT, {"request_id": stream_id})


def _validation_message(error: dict[str, Any] | None, node_errors: dict[str, Any]) -> str:
    """One readable line: ComfyUI's error message plus each failing node, type, input and reason."""
    parts: list[str] = []
    if error and error.get("message"):
        head = error["message"]
        if error.get("details") and not node_errors:
            head += f": {error['details']}"
        parts.append(head)
    for node_id, entry in node_errors.items():
        for item in entry.get("errors", []):
            input_name = (item.get("extra_info") or {}).get("input_name")
            where = f"node {node_id} ({entry.get('class_type')})"
            if input_name:
                where += f" input {input_name!r}"
            reason = item.get("message", "invalid")
            if item.get("details"):
                reason += f": {item['details']}"
            parts.append(f"{where}: {reason}")
    if not parts:
        parts.append(f"Workflow failed validation (live nodes: {INPUT_CLASS}, {OUTPUT_CLASS})")
    return "; ".join(parts)
