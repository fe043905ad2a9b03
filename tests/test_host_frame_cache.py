"""Unit tests of ``host.frame_cache``: a finished stream frame's per-frame cache entries leave ComfyUI's
output cache and its bookkeeping; frame-independent, inert and other prompts' entries stay.

Small fakes of ComfyUI's objects: a queue whose ``task_done`` runs ``process_item`` like 0.3.75's, a cache
shaped like 0.3.75's ``RAMPressureCache`` (no ``remove_local``) and one shaped like 0.38's (with it), and a
worker function that, like ComfyUI's ``prompt_worker``, holds the executor in a local and calls
``task_done``. The real-ComfyUI counterpart is in ``tests/test_live_models.py``.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

from comfy_trickle.host.frame_cache import (
    FrameCacheRelease,
    install_frame_cache_release,
    per_frame_node_ids,
    release_nodes,
)
from comfy_trickle.host.running_prompt import FRAME_SECRET_KEY

# a stream's frame prompt: live input -> encode -> decode -> output, a loader, and a user's node inert
FRAME_PROMPT = {
    "s_1": {"class_type": "TrickleInput", "inputs": {}},
    "s_10": {"class_type": "VAELoader", "inputs": {"vae_name": "taesd"}},
    "s_11": {"class_type": "VAEEncode", "inputs": {"pixels": ["s_1", 0], "vae": ["s_10", 0]}},
    "s_12": {"class_type": "VAEDecode", "inputs": {"samples": ["s_11", 0], "vae": ["s_10", 0]}},
    "s_3": {"class_type": "TrickleOutput", "inputs": {"images": ["s_12", 0]}},
    "7": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "x"}},
}
PER_FRAME = {"s_1", "s_11", "s_12", "s_3"}


def frame_item(prompt=None, secret=True):
    sensitive = {FRAME_SECRET_KEY: "secret"} if secret else {}
    return (1, "prompt-id", prompt or FRAME_PROMPT, {"client_id": "c"}, ["s_3"], sensitive)


class KeySet:
    """0.3.75's ``CacheKeySet`` surface: node id -> this prompt's key (a fresh key per frame here)."""

    def __init__(self, prompt, frame):
        self.keys = {node_id: (node_id, frame if node_id in PER_FRAME else 0) for node_id in prompt}

    def get_data_key(self, node_id):
        return self.keys.get(node_id)


class OldRamCache:
    """0.3.75's ``RAMPressureCache`` state after a prompt: an entry and its bookkeeping per executed node."""

    def __init__(self):
        self.cache, self.used_generation, self.timestamps, self.children = {}, {}, {}, {}

    def run(self, prompt, frame):
        self.cache_key_set = KeySet(prompt, frame)
        for key in self.cache_key_set.keys.values():
            self.cache[key] = ("outputs", None)
            self.used_generation[key] = frame
            self.timestamps[key] = float(frame)
        self.children[self.cache_key_set.get_data_key("s_11")] = []


class NewCache:
    """0.38's caches: ``remove_local(node_id)`` drops the node's entry and bookkeeping itself."""

    def __init__(self):
        self.removed = []

    def remove_local(self, node_id):
        self.removed.append(node_id)


class Queue:
    """0.3.75's ``PromptQueue.task_done``: pops the running item, runs ``process_item``, keeps history."""

    def __init__(self):
        self.running = {}
        self.history = {}

    def task_done(self, item_id, history_result, status=None, process_item=None):
        item = self.running.pop(item_id)
        if process_item is not None:
            item = process_item(item)
        self.history[item[1]] = {"prompt": item, "status": status, **history_result}


def prompt_worker(queue, e, item, item_id=0):
    """Like ComfyUI's worker loop: the executor ``e`` is a local of the function calling ``task_done``."""
    queue.running[item_id] = item
    queue.task_done(item_id, {"outputs": {}}, status="success", process_item=lambda prompt: prompt[:5])


def executor(outputs):
    return SimpleNamespace(caches=SimpleNamespace(outputs=outputs, objects=None))


def installed():
    queue = Queue()
    release = FrameCacheRelease(queue)
    release.install()
    return queue, release


def test_per_frame_nodes_are_the_live_input_and_what_it_reaches():
    assert per_frame_node_ids(frame_item()) == PER_FRAME


def test_a_prompt_without_the_frame_secret_is_not_a_frame():
    assert per_frame_node_ids(frame_item(secret=False)) == set()
    assert per_frame_node_ids(("too", "short")) == set()


def test_the_old_ram_cache_keeps_only_frame_independent_entries_over_many_frames():
    queue, release = installed()
    cache = OldRamCache()
    worker_executor = executor(cache)
    for frame in range(1, 101):
        cache.run(FRAME_PROMPT, frame)
        prompt_worker(queue, worker_executor, frame_item())
    # the loader and the inert user node: one entry each, whatever the number of frames
    assert set(cache.cache) == {("s_10", 0), ("7", 0)}
    assert set(cache.used_generation) == set(cache.timestamps) == set(cache.cache)
    assert cache.children == {}
    assert release.released_nodes == 100 * len(PER_FRAME)


def test_comfyuis_history_entry_is_still_written_as_before():
    queue, _ = installed()
    cache = OldRamCache()
    cache.run(FRAME_PROMPT, 1)
    prompt_worker(queue, executor(cache), frame_item())
    assert queue.history["prompt-id"]["prompt"] == frame_item()[:5]  # ComfyUI's process_item still applied
    assert queue.history["prompt-id"]["status"] == "success"


def test_a_users_prompt_keeps_all_its_entries():
    queue, release = installed()
    cache = OldRamCache()
    cache.run(FRAME_PROMPT, 1)
    prompt_worker(queue, executor(cache), frame_item(secret=False))
    assert len(cache.cache) == len(FRAME_PROMPT)
    assert release.released_nodes == 0


def test_a_cache_with_remove_local_is_asked_by_node_id():
    queue, _ = installed()
    cache = NewCache()
    prompt_worker(queue, executor(cache), frame_item())
    assert set(cache.removed) == PER_FRAME


def test_no_cache_and_a_cache_before_its_first_prompt_need_nothing():
    null_cache = SimpleNamespace()  # 0.3.75's NullCache: neither remove_local nor cache_key_set
    assert release_nodes(null_cache, PER_FRAME) == 0


def test_without_an_executor_in_reach_the_release_switches_off_and_comfyui_goes_on(caplog):
    queue, release = installed()
    queue.running[0] = frame_item()
    with caplog.at_level(logging.WARNING):
        queue.task_done(0, {"outputs": {}}, status="success", process_item=None)
        queue.running[1] = frame_item()
        queue.task_done(1, {"outputs": {}}, status="success")
    assert "prompt-id" in queue.history
    assert sum("executor was not found" in record.message for record in caplog.records) == 1


def test_a_failing_release_is_logged_once_and_never_reaches_comfyuis_worker(caplog):
    queue, _ = installed()
    broken = OldRamCache()
    broken.cache_key_set = SimpleNamespace(get_data_key=lambda node_id: 1 / 0)
    with caplog.at_level(logging.WARNING):
        prompt_worker(queue, executor(broken), frame_item())
        prompt_worker(queue, executor(broken), frame_item(), item_id=1)
    assert set(queue.history) == {"prompt-id"}
    assert sum("releasing failed" in record.message for record in caplog.records) == 1


def test_process_item_given_positionally_is_still_applied():
    queue, _ = installed()
    cache = OldRamCache()
    cache.run(FRAME_PROMPT, 1)
    e = executor(cache)  # noqa: F841 - found by the release among this caller's locals
    queue.running[0] = frame_item()
    queue.task_done(0, {"outputs": {}}, "success", lambda prompt: prompt[:5])
    assert queue.history["prompt-id"]["prompt"] == frame_item()[:5]
    assert set(cache.cache) == {("s_10", 0), ("7", 0)}


def test_install_on_a_server_without_a_queue_is_skipped():
    assert install_frame_cache_release(SimpleNamespace()) is None
    server = SimpleNamespace(prompt_queue=Queue())
    assert isinstance(install_frame_cache_release(server), FrameCacheRelease)
