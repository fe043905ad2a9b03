"""A person's view of ComfyUI's queue: a stream's frame prompts are left out of it.

A stream queues one prompt per frame in ComfyUI's own queue (under its frame client id,
``streams.pump.FRAME_CLIENT_PREFIX`` + stream id). ComfyUI shows everything in its queue to every
browser: the queue count of the ``status`` broadcast and ``GET /prompt`` (``exec_info.queue_remaining``:
"2 active" the whole time a stream ran), ``GET /queue`` and ``GET /history`` (frontend 1.32.9's queue and
history) and ``GET /api/jobs`` (ComfyUI 0.33's jobs API: frontend 1.49's job list, its "Job completed"
banner). None of them can tell a person's prompt from a frame's, and ComfyUI has no hook to filter them.

So, on the server *instance* and its aiohttp app (as ``queue_updates`` and ``frame_messages`` do):
- ``get_queue_info`` counts only prompts that are not a stream's frames (the ``status`` broadcast and
  ``GET /prompt`` both read it);
- a middleware takes the frame prompts out of the JSON answers of ``/queue``, ``/history`` and
  ``/api/jobs`` (and their ``/api`` twins); a jobs answer's ``pagination.total`` drops by as many, and
  ``/api/jobs/{id}`` of a frame prompt answers 404 as for an unknown job.
Nothing else changes: cancelling, interrupting and the executor read the queue itself, never these views.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from ..streams.pump import is_frame_client

logger = logging.getLogger(__name__)

QUEUE_PATHS = frozenset({"/queue", "/api/queue"})
HISTORY_PATHS = frozenset({"/history", "/api/history"})
JOBS_PATHS = frozenset({"/api/jobs"})
JOB_PATH_PREFIX = "/api/jobs/"
EXTRA_DATA_POSITION = 3  # a queue item: (number, prompt_id, prompt, extra_data, outputs, sensitive)
PROMPT_ID_POSITION = 1


def is_frame_item(item: Any) -> bool:
    """True for a queue item (or a history entry's ``prompt``) that is a stream frame's prompt."""
    if not isinstance(item, (list, tuple)) or len(item) <= EXTRA_DATA_POSITION:
        return False
    extra_data = item[EXTRA_DATA_POSITION]
    return isinstance(extra_data, dict) and is_frame_client(extra_data.get("client_id"))


def frame_prompt_ids(queue: Any) -> set[str]:
    """Ids of the frame prompts in ``queue`` (a ``PromptQueue``): running, pending and in its history."""
    running, pending = queue.get_current_queue_volatile()
    ids = {str(item[PROMPT_ID_POSITION]) for item in (*running, *pending) if is_frame_item(item)}
    history = getattr(queue, "history", {})
    ids.update(str(prompt_id) for prompt_id, entry in list(history.items())
               if isinstance(entry, dict) and is_frame_item(entry.get("prompt")))  # fmt: skip
    return ids


def person_queue(body: Any) -> Any:
    """A ``GET /queue`` answer without frame prompts."""
    if not isinstance(body, dict):
        return body
    return {key: [item for item in items if not is_frame_item(item)] if isinstance(items, list) else items
            for key, items in body.items()}  # fmt: skip


def person_history(body: Any) -> Any:
    """A ``GET /history`` answer without frame prompts."""
    if not isinstance(body, dict):
        return body
    return {prompt_id: entry for prompt_id, entry in body.items()
            if not (isinstance(entry, dict) and is_frame_item(entry.get("prompt")))}  # fmt: skip


def person_jobs(body: Any, frame_ids: Iterable[str]) -> Any:
    """A ``GET /api/jobs`` answer without the jobs of ``frame_ids``; its total drops by as many."""
    if not isinstance(body, dict) or not isinstance(body.get("jobs"), list):
        return body
    hidden = set(frame_ids)
    jobs = [job for job in body["jobs"] if not (isinstance(job, dict) and str(job.get("id")) in hidden)]
    answer = {**body, "jobs": jobs}
    pagination = body.get("pagination")
    if isinstance(pagination, dict) and isinstance(pagination.get("total"), int):
        answer["pagination"] = {**pagination, "total": pagination["total"] - (len(body["jobs"]) - len(jobs))}
    return answer


def person_queue_info(queue: Any) -> dict[str, Any]:
    """``PromptServer.get_queue_info``'s answer, counting only prompts that are not a stream's frames."""
    running, pending = queue.get_current_queue_volatile()
    remaining = sum(1 for item in (*running, *pending) if not is_frame_item(item))
    return {"exec_info": {"queue_remaining": remaining}}


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def queue_view_middleware(queue: Any) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The aiohttp middleware that filters the queue, history and jobs answers (module docstring)."""

    @web.middleware
    async def hide_frame_prompts(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if request.method == "GET" and path.startswith(JOB_PATH_PREFIX):
            job_id = path[len(JOB_PATH_PREFIX):]
            if job_id in frame_prompt_ids(queue):
                return web.json_response({"error": "Job not found"}, status=404)
        response = await handler(request)
        if request.method != "GET" or path not in QUEUE_PATHS | HISTORY_PATHS | JOBS_PATHS:
            return response
        if not isinstance(response, web.Response) or response.content_type != "application/json":
            return response
        if not isinstance(response.body, bytes):
            return response
        body = json.loads(response.body)
        if path in QUEUE_PATHS:
            filtered = person_queue(body)
        elif path in HISTORY_PATHS:
            filtered = person_history(body)
        else:
            filtered = person_jobs(body, frame_prompt_ids(queue))
        return web.json_response(filtered, status=response.status)

    return hide_frame_prompts


def hide_frame_prompts_from_people(server: Any) -> bool:
    """Install both parts on ``server`` (``PromptServer.instance``); False when it lacks what they need."""
    queue = getattr(server, "prompt_queue", None)
    app = getattr(server, "app", None)
    if not callable(getattr(queue, "get_current_queue_volatile", None)) or app is None:
        logger.info("comfy-trickle: ComfyUI's queue has no volatile view; frame prompts show in its queue")
        return False
    if app.frozen:
        logger.warning("comfy-trickle: ComfyUI's app already started; frame prompts show in its queue lists")
    else:
        app.middlewares.append(queue_view_middleware(queue))
    server.get_queue_info = lambda: person_queue_info(queue)
    return True
