"""Test-only nodes for the stream engine's tests (loaded by tests/support/comfyui.py as a node pack).

- ``TrickleTestCountRuns(tag)``: a frame-independent node that counts how often it really executes
  (``GET /trickle-test/counts``), for the cache test.
- ``TrickleTestCountFingerprints(tag)``: a constant whose ``IS_CHANGED`` counts how often ComfyUI asks it
  (``fingerprint:{tag}``), as ``LoadImage`` hashes its file each time.
- ``TrickleTestTagImage(image, tag)``: passes ``image`` through; depends on a ``TrickleTestCountRuns``.
- ``TrickleTestFailAt(image, tag, fail_at)``: passes through, raises on its ``fail_at``-th run (1-based).
- ``TrickleTestSlow(image, seconds)``: sleeps, then passes through.
- ``TrickleTestSlowFirst(image, tag, seconds)``: its first run per ``tag`` sleeps ``seconds`` (a model load),
  later runs pass through at once (counts ``slowfirst:{tag}``).
- ``TrickleTestHoldAt(image, tag, hold_at)``: passes through; its ``hold_at``-th run (1-based) counts
  ``hold:{tag}:started``, waits until ``POST /trickle-test/release/{tag}`` (at most ``HOLD_LIMIT_S``), then
  counts ``hold:{tag}:finished``. Tests use it to act only once a prompt of theirs is proven running.
"""

from __future__ import annotations

import threading
import time

from aiohttp import web
from server import PromptServer

_counts: dict[str, int] = {}
_lock = threading.Lock()
_releases: dict[str, threading.Event] = {}
# A test that fails before releasing must not hold the shared executor for the rest of the session.
HOLD_LIMIT_S = 30.0


def _release_event(tag: str) -> threading.Event:
    with _lock:
        return _releases.setdefault(tag, threading.Event())


def _bump(key: str) -> int:
    with _lock:
        _counts[key] = _counts.get(key, 0) + 1
        return _counts[key]


class TrickleTestCountRuns:
    CATEGORY = "trickle/testing"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's V1 API name
        return {"required": {"tag": ("STRING", {"default": "x"})}}

    def run(self, tag):
        _bump(f"count:{tag}")
        return (tag,)


class TrickleTestCountFingerprints:
    CATEGORY = "trickle/testing"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"tag": ("STRING", {"default": "x"})}}

    @classmethod
    def IS_CHANGED(cls, tag):  # noqa: N802
        _bump(f"fingerprint:{tag}")
        return tag

    def run(self, tag):
        return (tag,)


class TrickleTestTagImage:
    CATEGORY = "trickle/testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"image": ("IMAGE",), "tag": ("STRING", {"forceInput": True})}}

    def run(self, image, tag):
        return (image,)


class TrickleTestFailAt:
    CATEGORY = "trickle/testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {
            "required": {
                "image": ("IMAGE",),
                "tag": ("STRING", {"default": "fail"}),
                "fail_at": ("INT", {"default": 5, "min": 1}),
            }
        }

    def run(self, image, tag, fail_at):
        if _bump(f"fail:{tag}") == fail_at:
            raise RuntimeError(f"TrickleTestFailAt {tag} fails on run {fail_at}")
        return (image,)


class TrickleTestSlow:
    CATEGORY = "trickle/testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"image": ("IMAGE",), "seconds": ("FLOAT", {"default": 1.0})}}

    def run(self, image, seconds):
        time.sleep(seconds)
        return (image,)


class TrickleTestSlowFirst:
    CATEGORY = "trickle/testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {
            "required": {
                "image": ("IMAGE",),
                "tag": ("STRING", {"default": "slow"}),
                "seconds": ("FLOAT", {"default": 3.0}),
            }
        }

    def run(self, image, tag, seconds):
        if _bump(f"slowfirst:{tag}") == 1:
            time.sleep(seconds)
        return (image,)


class TrickleTestHoldAt:
    CATEGORY = "trickle/testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {
            "required": {
                "image": ("IMAGE",),
                "tag": ("STRING", {"default": "hold"}),
                "hold_at": ("INT", {"default": 1, "min": 1}),
            }
        }

    def run(self, image, tag, hold_at):
        if _bump(f"hold:{tag}:runs") == hold_at:
            _bump(f"hold:{tag}:started")
            _release_event(tag).wait(HOLD_LIMIT_S)
            _bump(f"hold:{tag}:finished")
        return (image,)


NODE_CLASS_MAPPINGS = {
    "TrickleTestCountRuns": TrickleTestCountRuns,
    "TrickleTestCountFingerprints": TrickleTestCountFingerprints,
    "TrickleTestTagImage": TrickleTestTagImage,
    "TrickleTestFailAt": TrickleTestFailAt,
    "TrickleTestSlow": TrickleTestSlow,
    "TrickleTestHoldAt": TrickleTestHoldAt,
    "TrickleTestSlowFirst": TrickleTestSlowFirst,
}


@PromptServer.instance.routes.get("/trickle-test/counts")
async def _get_counts(request):
    with _lock:
        return web.json_response(dict(_counts))


@PromptServer.instance.routes.post("/trickle-test/release/{tag}")
async def _release(request):
    _release_event(request.match_info["tag"]).set()
    return web.json_response({"released": request.match_info["tag"]})


@PromptServer.instance.routes.get("/trickle-test/threads")
async def _get_threads(request):
    return web.json_response(sorted(t.name for t in threading.enumerate()))
