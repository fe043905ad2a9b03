"""Test and bench ComfyUI node pack: ``GET /cache-probe`` reports the size of ComfyUI's executor caches.

ComfyUI keeps its ``PromptExecutor`` in a local (``e``) of its worker loop (main.py ``prompt_worker``), so
the probe reads it from that thread's stack (read-only, microseconds). (The garbage collector cannot be
used: comfy-trickle freezes the collector's generations while streams run.) Figures per cache:
``entries`` (cached node results), ``used_generation`` and ``timestamps`` (LRU / RAM-pressure
bookkeeping dicts), ``children``, ``subcaches``.
"""

import sys

from aiohttp import web
from server import PromptServer

NODE_CLASS_MAPPINGS = {}


def _executor():
    for frame in sys._current_frames().values():
        while frame is not None:
            if frame.f_code.co_name == "prompt_worker" and "e" in frame.f_locals:
                return frame.f_locals["e"]
            frame = frame.f_back
    return None


def _sizes(cache):
    return {
        "class": type(cache).__name__,
        "entries": len(getattr(cache, "cache", ())),
        "used_generation": len(getattr(cache, "used_generation", ())),
        "timestamps": len(getattr(cache, "timestamps", ())),
        "children": len(getattr(cache, "children", ())),
        "subcaches": len(getattr(cache, "subcaches", ())),
    }


@PromptServer.instance.routes.get("/cache-probe")
async def _cache_probe(_request):
    executor = _executor()
    if executor is None:
        return web.json_response({"error": "ComfyUI's prompt worker not found"}, status=503)
    caches = executor.caches
    return web.json_response({"outputs": _sizes(caches.outputs), "objects": _sizes(caches.objects)})


@PromptServer.instance.routes.get("/raw-queue")
async def _raw_queue(_request):
    """ComfyUI's queue as its PromptQueue holds it, frame prompts included (comfy-trickle leaves those out
    of ``GET /queue``): what any other code in the process can read. Without the sensitive part."""
    running, pending = PromptServer.instance.prompt_queue.get_current_queue_volatile()
    return web.json_response({"queue_running": [list(item[:5]) for item in running],
                              "queue_pending": [list(item[:5]) for item in pending]})
