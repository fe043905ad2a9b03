"""Drop a stream frame's own results from ComfyUI's output cache once that frame's prompt has finished.

Why (issue 15 §3): a frame's live input has a fresh NaN fingerprint, so the cache key of every node
downstream of it is new every frame and can never be hit again. ComfyUI's classic cache drops such
entries at the next prompt, but its LRU and RAM-pressure caches keep them: under ``--cache-ram`` (0.3.75)
every per-frame result stays until free RAM falls under the headroom, and its bookkeeping dicts
(``used_generation``, ``timestamps``) are never pruned at all, even by ``poll()``: +4 entries and
+0.19 MB RSS per frame in ``bench/cache_bench.py soak``.

How: ComfyUI's prompt worker calls ``prompt_queue.task_done(item_id, ..., process_item=...)`` right after
the executor finished a prompt and before it takes the next one, on the worker thread (no race with the
executor). We wrap ``task_done`` on the queue *instance* (as ``queue_updates`` does for
``queue_updated``); ``process_item`` shows us the finished item. For a stream frame's prompt (its
sensitive extra data carries the frame secret) the entries of the nodes downstream of its live input,
and their bookkeeping, are dropped. Nothing else is touched: not the frame-independent nodes (loaders,
carried inert, keep their entries), not other prompts' entries.

The executor's caches (features, not versions): ComfyUI keeps its ``PromptExecutor`` in a local of its
worker loop (main.py ``prompt_worker``, both 0.3.75 and 0.38), the function that calls ``task_done``; it
is found once among the caller's locals as the object with ``caches.outputs``. Dropping a node:
- the cache's own ``remove_local(node_id)`` where it has one (ComfyUI 0.38, comfy_execution/caching.py:
  ``BasicCache.remove_local`` pops the entry, ``LRUCache.remove_local`` also ``used_generation`` and
  ``children``, ``RAMPressureCache.remove_local`` also ``timestamps``; read in Comfy-Org/ComfyUI);
- otherwise (0.3.75) the same by hand: the node's key from ``cache_key_set.get_data_key`` popped from
  ``cache`` and, where present, ``used_generation``, ``timestamps`` and ``children``;
- a cache with neither (``--cache-none``'s ``NullCache``) or no executor found: nothing to do (logged once).
Any failure is logged once and switches the release off; ComfyUI's ``task_done`` always runs first.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from types import FrameType
from typing import Any

from ..streams.workflow import INPUT_CLASS, frame_dependent
from .running_prompt import FRAME_SECRET_KEY

logger = logging.getLogger(__name__)

# the prompt worker calls task_done itself; a wrapper of another pack may sit in between
CALLER_FRAMES_SEARCHED = 4
# ComfyUI's bookkeeping dicts keyed like the output cache (0.3.75 has no remove_local)
BOOKKEEPING_DICTS = ("cache", "used_generation", "timestamps", "children")


def per_frame_node_ids(item: Any) -> set[str]:
    """The node ids of a finished queue item whose results are keyed per frame: the live input and
    everything downstream of it, for a stream frame's prompt; empty for any other prompt."""
    if not isinstance(item, (tuple, list)) or len(item) < 6:
        return set()
    prompt, sensitive = item[2], item[5]
    if not isinstance(sensitive, dict) or FRAME_SECRET_KEY not in sensitive or not isinstance(prompt, dict):
        return set()
    inputs = [
        node_id
        for node_id, node in prompt.items()
        if isinstance(node, dict) and node.get("class_type") == INPUT_CLASS
    ]
    return frame_dependent(prompt, inputs)


def release_nodes(outputs: Any, node_ids: Iterable[str]) -> int:
    """Drop ``node_ids``' entries (keyed by the prompt that just ran) from ComfyUI's output cache and its
    bookkeeping; returns how many nodes had a key."""
    remove_local = getattr(outputs, "remove_local", None)
    if callable(remove_local):  # ComfyUI's own way (0.38)
        count = 0
        for node_id in node_ids:
            remove_local(node_id)
            count += 1
        return count
    key_set = getattr(outputs, "cache_key_set", None)
    if key_set is None:  # NullCache, or no prompt ran yet
        return 0
    books = [book for name in BOOKKEEPING_DICTS if isinstance(book := getattr(outputs, name, None), dict)]
    count = 0
    for node_id in node_ids:
        key = key_set.get_data_key(node_id)
        if key is None:
            continue
        count += 1
        for book in books:
            book.pop(key, None)
    return count


def find_executor(frame: FrameType | None) -> Any:
    """The object with ``caches.outputs`` among the locals of ``frame`` and its callers (ComfyUI's worker
    loop holds its ``PromptExecutor`` there); None when there is none."""
    for _ in range(CALLER_FRAMES_SEARCHED):
        if frame is None:
            return None
        for value in frame.f_locals.values():
            if _is_executor(value):
                return value
        frame = frame.f_back
    return None


def _is_executor(value: Any) -> bool:
    caches = getattr(value, "caches", None)
    return caches is not None and hasattr(caches, "outputs") and not isinstance(value, type)


class FrameCacheRelease:
    """Wraps one ``PromptQueue``'s ``task_done``; see the module docstring."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self._original = queue.task_done
        self._executor: Any = None
        self._enabled = True
        self.released_nodes = 0  # nodes whose entries were dropped so far (tests, logs)

    def install(self) -> None:
        self._queue.task_done = self._task_done

    def _task_done(self, *args: Any, **kwargs: Any) -> Any:
        finished: list[Any] = []
        positional = len(args) >= 4  # (item_id, history_result, status, process_item)
        process_item = args[3] if positional else kwargs.get("process_item")

        def seen(item: Any) -> Any:
            finished.append(item)
            return process_item(item) if process_item is not None else item

        if positional:
            args = (*args[:3], seen, *args[4:])
        else:
            kwargs["process_item"] = seen
        result = self._original(*args, **kwargs)  # ComfyUI's own bookkeeping first, whatever happens here
        if self._enabled and finished:
            self._release(finished[0], sys._getframe(1))
        return result

    def _release(self, item: Any, caller: FrameType) -> None:
        try:
            node_ids = per_frame_node_ids(item)
            if not node_ids:
                return
            if self._executor is None:
                self._executor = find_executor(caller)
                if self._executor is None:
                    self._disable("ComfyUI's executor was not found beside its worker's task_done call")
                    return
            self.released_nodes += release_nodes(self._executor.caches.outputs, node_ids)
        except Exception:  # never break ComfyUI's worker loop
            logger.exception("comfy-trickle: releasing a frame's cache entries failed")
            self._disable("releasing failed")

    def _disable(self, why: str) -> None:
        self._enabled = False
        logger.warning(
            "comfy-trickle: %s; per-frame results stay in ComfyUI's LRU / RAM-pressure cache until it "
            "evicts them",
            why,
        )


def install_frame_cache_release(server: Any) -> FrameCacheRelease | None:
    """Wrap ``server.prompt_queue.task_done`` (``server`` is ``PromptServer.instance``); None without one."""
    queue = getattr(server, "prompt_queue", None)
    if queue is None or not callable(getattr(queue, "task_done", None)):
        logger.warning("comfy-trickle: no prompt queue with task_done; per-frame cache entries stay")
        return None
    release = FrameCacheRelease(queue)
    release.install()
    return release
