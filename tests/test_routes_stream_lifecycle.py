"""routes/stream_lifecycle.py against the real ComfyUI: restart keeps the id, the URLs and the workflow and
frames flow again; dismiss forgets a finished stream (409 while it runs); token and 404 in JSON."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiohttp.test_utils import TestClient, TestServer
from comfy_trickle.devtools.stream_harness import INVERT, StreamAPI
from comfy_trickle.routes.settings import TrickleSettings
from comfy_trickle.routes.stream_lifecycle import StreamLifecycleRoutes
from comfy_trickle.streams.errors import StreamNotFound

pytestmark = pytest.mark.timeout(180)
TOKEN = "s3cret"  # noqa: S105 - a test token


class NoStreams:
    def config(self, stream_id):
        raise StreamNotFound(f"No stream with id {stream_id!r}.")

    async def restart(self, stream_id):
        raise StreamNotFound(f"No stream with id {stream_id!r}.")

    def forget(self, stream_id):
        raise StreamNotFound(f"No stream with id {stream_id!r}.")


async def test_restart_and_dismiss_need_the_token_and_answer_404_json_for_unknown_ids():
    routes = StreamLifecycleRoutes(NoStreams(), TrickleSettings(token=TOKEN))
    client = TestClient(TestServer(routes.get_app()))
    await client.start_server()
    try:
        for method, path in (("POST", "/stream/x/restart"), ("DELETE", "/stream/x")):
            resp = await client.request(method, path)
            assert resp.status == 401
            resp = await client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert resp.status == 404
            assert (await resp.json())["error"] == "No stream with id 'x'."
    finally:
        await client.close()


async def frames_out_reach(api: StreamAPI, stream_id: str, count: int) -> dict:
    for _ in range(600):
        status = await api.status(stream_id)
        if status["state"] == "running" and status["counters"]["frames_out"] >= count:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"{stream_id} never wrote {count} frames: {status}")


async def test_restart_keeps_id_urls_and_workflow_and_dismiss_forgets_the_finished_stream(comfyui):
    status, source = comfyui.post_json("/trickle/test-source", {"width": 128, "height": 96, "fps": 15,
                                                                "duration_s": 60, "audio": False})
    assert status == 200, source
    stream_id = f"life-{uuid.uuid4().hex[:6]}"
    api = StreamAPI(comfyui.base_url)
    try:
        status, started = await api.start(stream_id, source["subscribe_url"], source["publish_url"], INVERT,
                                          width=128, height=96)
        assert status == 200, started
        first = await frames_out_reach(api, stream_id, 10)

        status, body = await api.call("DELETE", f"/stream/{stream_id}")
        assert status == 409, body
        assert "still running" in body["error"]

        status, restarted = await api.call("POST", f"/stream/{stream_id}/restart")
        assert status == 200, restarted
        assert restarted["request_id"] == stream_id
        assert restarted["config"] == started["config"]
        again = await frames_out_reach(api, stream_id, 10)
        # a new run: its own start time and counters, the same config
        assert again["started_at"] > first["started_at"]
        assert again["config"] == first["config"]
        assert again["counters"]["uptime_s"] < first["counters"]["uptime_s"] + 60

        status, stopped = await api.stop(stream_id)
        assert status == 200
        status, dismissed = await api.call("DELETE", f"/stream/{stream_id}")
        assert status == 200, dismissed
        assert dismissed["state"] == "stopped"
        status, body = await api.call("GET", f"/stream/{stream_id}/status")
        assert status == 404
        status, listing = await api.call("GET", "/streams")
        assert stream_id not in listing["streams"]
    finally:
        await api.call("POST", f"/stream/{stream_id}/stop")
        await api.close()
        comfyui.request("DELETE", f"/trickle/test-source/{source['name']}")
