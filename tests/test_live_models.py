"""Model workflows live, under every ComfyUI cache mode (issue 15 §1-3).

Real ComfyUI with small random-weight models in the real formats (``devtools/tiny_models.py``): TAESD through
``VAELoader`` and a compact ESRGAN through ``UpscaleModelLoader``. Node executions are counted from
ComfyUI's own websocket ``executing`` events (cached nodes send none). Each test runs under the host's
default cache (classic on 0.3.75, RAM pressure on 0.33), ``--cache-classic``, ``--cache-lru 64``,
``--cache-ram`` and ``--cache-none``; with no cache, loaders run every frame (documented in the README) and
the stream still works.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from comfy_trickle.devtools.stream_harness import StreamAPI, collect_output, publish_synthetic
from comfy_trickle.devtools.tiny_models import (
    UPSCALER_NAME,
    count_executions,
    install_models,
    make_tiny_models,
    taesd_workflow,
    upscale_workflow,
)

SIZE = 64
FRAMES = 20
CACHE_MODES = {
    "default": (),  # the host's own: classic on 0.3.75, RAM pressure on 0.33
    "classic": ("--cache-classic",),
    "lru": ("--cache-lru", "64"),
    "ram": ("--cache-ram",),
    "none": ("--cache-none",),
}
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600), pytest.mark.relay(autocreate=True)]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    return make_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(params=list(CACHE_MODES))
def cache_mode(request) -> str:
    return request.param


TRIVIAL = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
}


def empty_cache(server) -> None:
    """ComfyUI's own ``POST /free``: its worker resets every cache after the next prompt (two prompts
    queued: once the second finished, the reset after the first has happened)."""
    status, _ = server.post_json("/free", {"free_memory": True, "unload_models": True})
    assert status == 200
    for color in (1, 2):
        server.wait_for_history(
            server.queue_prompt(
                {
                    **TRIVIAL,
                    "1": {
                        **TRIVIAL["1"],
                        "inputs": {**TRIVIAL["1"]["inputs"], "color": color + time.monotonic_ns() % 10**6},
                    },
                }
            ),
            60,
        )


@pytest.fixture
def comfy(cache_mode, comfyui_factory, tiny_models):
    server = comfyui_factory(extra_args=CACHE_MODES[cache_mode])
    install_models(tiny_models, server.base_directory)
    empty_cache(server)  # each test counts loads from a cold cache
    return server


@pytest.fixture
async def api(comfy):
    client = StreamAPI(comfy.base_url)
    await client.stop_active()  # the classic-cache server is the session's, shared with other modules
    yield client
    await client.stop_active()
    await client.close()


def unique(name: str) -> str:
    return f"{name}-{time.monotonic_ns() % 10**9}"


async def run_counted(api, relay, comfy, stream_id, workflow, frames=FRAMES, timeout=120.0):
    """Run one stream over ``frames`` frames; returns (decoded output, final status, executions)."""
    relay.relay.create_channel(f"{stream_id}-in", "video/MP2T")
    relay.relay.create_channel(f"{stream_id}-out", "video/MP2T")
    sub_url, pub_url = relay.channel_url(f"{stream_id}-in"), relay.channel_url(f"{stream_id}-out")
    async with count_executions(comfy.base_url, f"comfy-trickle:{stream_id}") as executions:
        status, body = await api.start(stream_id, sub_url, pub_url, workflow, SIZE, SIZE, max_backlog_s=60.0)
        assert status == 200, body
        collector = asyncio.create_task(collect_output(pub_url, timeout=timeout))
        await publish_synthetic(sub_url, frames, width=SIZE, height=SIZE)
        output = await asyncio.wait_for(collector, timeout)
        final = await api.wait_state(stream_id, {"completed", "error"}, timeout=timeout)
    return output, final, executions


async def test_model_loaders_run_once_per_stream_and_once_between_streams(api, relay, comfy, cache_mode):
    a, b, up = unique("taesd-a"), unique("taesd-b"), unique("upscale")
    frames = 3 * FRAMES  # 2 s of input: a load of a second still leaves frames that run after it
    results = await asyncio.gather(
        run_counted(api, relay, comfy, a, taesd_workflow(1.0), frames),
        run_counted(api, relay, comfy, b, taesd_workflow(0.5), frames),
        run_counted(api, relay, comfy, up, upscale_workflow(), frames),
    )
    for output, final, executions in results:
        assert final["state"] == "completed", final
        counters = final["counters"]
        # every frame ran through the models, or went out as a placeholder while the first frame loaded
        # them (on a loaded machine a load over 0.4 s covers the frames meanwhile: streams/warmup.py); the
        # ones that ran are the ones the loader counts below are about
        assert counters["frames_dropped"] == 0, counters
        assert counters["frames_processed"] + counters["frames_covered"] >= frames, counters
        assert executions.counts["1"] >= counters["frames_processed"] >= FRAMES, counters
        # (egress has been seen to leave out the last frame at end of stream on a loaded machine: not a
        # cache matter, see the report)
        assert counters["frames_out"] >= frames - 1, counters
        assert len(output.frames) >= frames // 2  # (a subscriber joining late may miss the first segment)
        assert {(frame.rgb.shape[1], frame.rgb.shape[0]) for frame in output.frames} == {(SIZE, SIZE)}
    (_, _, exec_a), (_, _, exec_b), (_, _, exec_up) = results
    ran_a, ran_b, ran_up = exec_a.counts["1"], exec_b.counts["1"], exec_up.counts["1"]
    assert (exec_a.counts["11"], exec_b.counts["11"]) == (ran_a, ran_b)  # VAEEncode: per frame that ran
    assert exec_up.counts["22"] == ran_up  # the upscale itself: per frame that ran
    vae_loads = exec_a.counts["10"] + exec_b.counts["10"]
    if cache_mode == "none":  # no cache: every constant runs per frame (README "Cache modes")
        assert vae_loads == ran_a + ran_b and exec_up.counts["20"] == ran_up
    else:  # both streams name the same taesd files: loaded once between them
        assert vae_loads == 1, (exec_a.counts, exec_b.counts)
        assert exec_up.counts["20"] == 1, exec_up.counts


def user_upscale_prompt(color: int) -> dict:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": UPSCALER_NAME}},
        "3": {
            "class_type": "ImageUpscaleWithModel",
            "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]},
        },
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }


async def frames_processed(api, stream_id: str) -> int:
    return (await api.status(stream_id))["counters"]["frames_processed"]


async def test_user_runs_and_a_stream_keep_each_others_cache(api, relay, comfy, cache_mode):
    stream_id = unique("keep")
    relay.relay.create_channel(f"{stream_id}-in", "video/MP2T")
    relay.relay.create_channel(f"{stream_id}-out", "video/MP2T")
    sub_url, pub_url = relay.channel_url(f"{stream_id}-in"), relay.channel_url(f"{stream_id}-out")
    user_client = unique("user")
    user_prompt = user_upscale_prompt(color=1000 + time.monotonic_ns() % 1000)  # fresh per test run
    cached_lists = []
    async with (
        count_executions(comfy.base_url, f"comfy-trickle:{stream_id}") as stream_exec,
        count_executions(comfy.base_url, user_client) as user_exec,
    ):
        workflow = taesd_workflow()
        status, body = await api.start(stream_id, sub_url, pub_url, workflow, SIZE, SIZE, max_backlog_s=60)
        assert status == 200, body
        publisher = asyncio.create_task(publish_synthetic(sub_url, 600, width=SIZE, height=SIZE, end=False))
        try:
            for _run in range(4):  # four clicks on Run with the same workflow, stream frames between them
                seen = await frames_processed(api, stream_id)
                for _ in range(600):
                    if await frames_processed(api, stream_id) >= seen + 3:
                        break
                    await asyncio.sleep(0.05)
                prompt_id = await asyncio.to_thread(comfy.queue_prompt, user_prompt, user_client)
                entry = await asyncio.to_thread(comfy.wait_for_history, prompt_id, 60)
                assert entry["status"]["status_str"] == "success", entry["status"]
                messages = entry["status"]["messages"]
                cached = [data["nodes"] for event, data in messages if event == "execution_cached"]
                cached_lists.append(set(cached[0]) if cached else set())
            assert await frames_processed(api, stream_id) > 12
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
            await api.stop(stream_id)
    if cache_mode == "none":
        assert user_exec.counts["2"] == 4  # with no cache every Run loads again; the stream still ran
        # every frame's prompt loaded the VAE (ComfyUI runs the loader first, so the prompt running at the
        # stop may have loaded it and not reached the TrickleInput)
        frame_prompts = [nodes for nodes in stream_exec.nodes_by_prompt.values() if "1" in nodes]
        assert len(frame_prompts) > 12 and all("10" in nodes for nodes in frame_prompts), stream_exec.counts
        return
    # the stream's model loaded once, though four user prompts ran during it
    assert stream_exec.counts["10"] == 1, stream_exec.counts
    # the user's first Run executed its nodes; each later identical Run executed nothing
    assert user_exec.counts["2"] == 1 and user_exec.counts["3"] == 1, user_exec.counts
    assert all(cached >= {"1", "2", "3", "4"} for cached in cached_lists[1:]), cached_lists


async def cache_sizes(comfy) -> dict:
    status, probe = await asyncio.to_thread(comfy.get, "/cache-probe")  # tests/custom_nodes/cache_probe
    assert status == 200
    return probe["outputs"]


SOAK_FRAMES = 150  # per stream


@pytest.mark.parametrize("cache_mode", ["default", "classic", "lru", "ram"])
async def test_two_model_streams_keep_cache_bookkeeping_bounded(api, relay, comfy, cache_mode):
    """The CI version of ``bench/cache_bench.py soak``: two model streams, a few hundred frames, then
    ComfyUI's output cache is sampled. Every frame's own results (live input and downstream: fresh keys
    every frame) leave the cache and its bookkeeping once the frame's prompt is done
    (``host/frame_cache.py``), so under every cache mode the output cache holds a bounded number of
    entries and keys, not some per frame; and the streams' models stayed cached (loaded once)."""
    # warm-up streams first: on a loaded machine the first prompt (model load, torch start-up) can outlast
    # a short input, whose frames then all go out as warm-up placeholders without reaching the cache
    await asyncio.gather(
        run_counted(api, relay, comfy, unique("warm-taesd"), taesd_workflow(), 10, timeout=400),
        run_counted(api, relay, comfy, unique("warm-up"), upscale_workflow(), 10, timeout=400),
    )
    (_, taesd, taesd_exec), (_, up, up_exec) = await asyncio.gather(
        run_counted(api, relay, comfy, unique("soak-taesd"), taesd_workflow(), SOAK_FRAMES, timeout=400),
        run_counted(api, relay, comfy, unique("soak-up"), upscale_workflow(), SOAK_FRAMES, timeout=400),
    )
    processed = taesd["counters"]["frames_processed"] + up["counters"]["frames_processed"]
    # Enough frames went through the models that a per-frame leak would show: about 4 entries and keys per
    # frame processed under LRU / RAM-pressure before the release, so >= 160 here. (A loaded 2-core machine
    # covers many frames with warm-up placeholders or drops them at the hand-off: not this test's matter.)
    assert processed >= 40, [taesd["counters"], up["counters"]]
    sizes = await cache_sizes(comfy)
    assert sizes["entries"] < 40, sizes
    assert sizes["used_generation"] < 40 and sizes["timestamps"] < 40 and sizes["children"] < 40, sizes
    # the frame-independent nodes were still served from the cache: each model loaded at most once (none
    # when still cached from the warm-up streams)
    assert taesd_exec.counts["10"] <= 1 and up_exec.counts["20"] <= 1, (taesd_exec.counts, up_exec.counts)
