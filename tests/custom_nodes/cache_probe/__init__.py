"""Test and bench ComfyUI node pack: ``GET /cache-probe`` reports the size of ComfyUI's executor caches.

ComfyUI keeps its ``PromptExecutor`` in a local of its worker loop, so the probe finds the live cache
objects through the garbage collector (read-only; about 0.1 s per call, for sampling in a soak).
Figures: ``entries`` (cached node results), ``used_generation`` and ``timestamps`` (LRU / RAM-pressure
bookkeeping dicts), ``subcaches``, per cache class.
"""

import gc

from aiohttp import web
from server import PromptServer

NODE_CLASS_MAPPINGS = {}


@PromptServer.instance.routes.get("/cache-probe")
async def _cache_probe(_request):
    from comfy_execution import caching

    report = {}
    gc.collect()
    for obj in gc.get_objects():
        if isinstance(obj, (caching.BasicCache, caching.NullCache)):
            name = type(obj).__name__
            entry = report.setdefault(
                name,
                {
                    "caches": 0,
                    "entries": 0,
                    "used_generation": 0,
                    "timestamps": 0,
                    "children": 0,
                    "subcaches": 0,
                },
            )
            entry["caches"] += 1
            entry["entries"] += len(getattr(obj, "cache", ()))
            entry["used_generation"] += len(getattr(obj, "used_generation", ()))
            entry["timestamps"] += len(getattr(obj, "timestamps", ()))
            entry["children"] += len(getattr(obj, "children", ()))
            entry["subcaches"] += len(getattr(obj, "subcaches", ()))
    return web.json_response(report)
