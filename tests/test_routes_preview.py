"""The preview route (routes/preview.py): JPEG of the newest output frame, cached so N viewers cost one
encode, 304 while the frame is unchanged, 204 before the first frame, 404 JSON for unknown streams.

The frame source here is a dict of real frames standing in for the registry's ``latest_output``; the
route against the real registry and a real stream is covered by tests/test_ui_browser.py.
"""

from __future__ import annotations

import asyncio
import io

import av
import numpy as np
import pytest
from comfy_trickle.media.jpeg import encode_jpeg
from comfy_trickle.routes.preview import PreviewRoutes
from comfy_trickle.routes.settings import TrickleSettings
from comfy_trickle.streams.errors import StreamNotFound


class FrameTable:
    """stream id -> newest (rgb, pts) or None; unknown ids raise like the registry does."""

    def __init__(self) -> None:
        self.frames: dict[str, tuple[np.ndarray, int] | None] = {}

    def latest_output(self, stream_id: str):
        if stream_id not in self.frames:
            raise StreamNotFound(f"Stream {stream_id} not found")
        return self.frames[stream_id]


def solid(width: int, height: int, rgb: tuple[int, int, int]) -> np.ndarray:
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = rgb
    return frame


def decode_jpeg(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


class FakeClock:
    """Monotonic seconds that only move when a test says so (the encode-interval guard reads it)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 1.0) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def preview(aiohttp_client, clock):
    table = FrameTable()
    routes = PreviewRoutes(table, TrickleSettings(token=""), clock=clock)
    client = await aiohttp_client(routes.get_app())
    return table, routes, client


def test_encode_jpeg_keeps_colour_and_scales_down_with_aspect():
    frame = solid(640, 360, (200, 40, 90))
    image = decode_jpeg(encode_jpeg(frame, max_width=320))
    assert image.shape == (180, 320, 3)
    assert np.abs(image.astype(int) - (200, 40, 90)).max() <= 6


async def test_serves_newest_frame_as_jpeg_and_follows_new_frames(preview, clock):
    table, _routes, client = preview
    table.frames["s1"] = (solid(256, 128, (250, 0, 0)), 3000)
    response = await client.get("/trickle/preview/s1.jpg")
    assert response.status == 200
    assert response.content_type == "image/jpeg"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Trickle-Pts"] == "3000"
    first = decode_jpeg(await response.read())
    assert first.shape == (128, 256, 3)
    assert first[64, 128, 0] > 230 and first[64, 128, 2] < 25

    table.frames["s1"] = (solid(256, 128, (0, 0, 250)), 6000)
    clock.advance()
    response = await client.get("/trickle/preview/s1.jpg")
    second = decode_jpeg(await response.read())
    assert second[64, 128, 2] > 230 and second[64, 128, 0] < 25
    assert response.headers["X-Trickle-Pts"] == "6000"


async def test_many_concurrent_viewers_cost_one_encode(preview):
    table, routes, client = preview
    table.frames["s1"] = (solid(640, 480, (10, 200, 10)), 1)
    responses = await asyncio.gather(*(client.get("/trickle/preview/s1.jpg") for _ in range(8)))
    bodies = [await response.read() for response in responses]
    assert {response.status for response in responses} == {200}
    assert len(set(bodies)) == 1
    assert routes.encodes == 1
    # A different width is a different picture: one more encode, then cached as well.
    for _ in range(3):
        response = await client.get("/trickle/preview/s1.jpg?max_width=128")
        assert decode_jpeg(await response.read()).shape == (96, 128, 3)
    assert routes.encodes == 2


async def test_if_none_match_gets_304_until_a_new_frame_arrives(preview, clock):
    table, routes, client = preview
    table.frames["s1"] = (solid(128, 128, (1, 2, 3)), 1)
    first = await client.get("/trickle/preview/s1.jpg")
    etag = first.headers["ETag"]
    again = await client.get("/trickle/preview/s1.jpg", headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""
    table.frames["s1"] = (solid(128, 128, (1, 2, 3)), 2)  # a new frame object, even with equal pixels
    clock.advance()
    newer = await client.get("/trickle/preview/s1.jpg", headers={"If-None-Match": etag})
    assert newer.status == 200
    assert newer.headers["ETag"] != etag
    assert routes.encodes == 2


async def test_no_frame_yet_is_204_and_unknown_stream_is_404_json(preview):
    table, _routes, client = preview
    table.frames["waiting"] = None
    response = await client.get("/trickle/preview/waiting.jpg")
    assert response.status == 204
    response = await client.get("/trickle/preview/nope.jpg")
    assert response.status == 404
    assert "nope" in (await response.json())["error"]


async def test_bad_max_width_is_400_naming_the_field(preview):
    table, _routes, client = preview
    table.frames["s1"] = (solid(64, 64, (0, 0, 0)), 1)
    for value in ("abc", "10", "99999"):
        response = await client.get(f"/trickle/preview/s1.jpg?max_width={value}")
        assert response.status == 400
        assert (await response.json())["field"] == "max_width"


async def test_viewers_out_of_step_cannot_raise_the_encode_rate(preview, clock):
    table, routes, client = preview
    for pts in range(1, 11):  # the stream moves on between every request, all within 1/15 s
        table.frames["s1"] = (solid(64, 64, (pts, 0, 0)), pts)
        clock.advance(0.005)
        response = await client.get("/trickle/preview/s1.jpg")
        assert response.status == 200
        assert response.headers["X-Trickle-Pts"] == "1"  # the fresh JPEG is served, not re-encoded
    assert routes.encodes == 1
    clock.advance(0.1)
    response = await client.get("/trickle/preview/s1.jpg")
    assert response.headers["X-Trickle-Pts"] == "10"
    assert routes.encodes == 2


async def test_cache_lets_go_of_frames_the_stream_moved_past(preview):
    table, routes, client = preview
    table.frames["a"] = (solid(64, 64, (9, 9, 9)), 1)
    table.frames["b"] = (solid(64, 64, (9, 9, 9)), 1)
    await client.get("/trickle/preview/a.jpg")
    del table.frames["a"]  # stream a forgotten by the registry
    await client.get("/trickle/preview/b.jpg")
    assert [key[0] for key in routes._cache] == ["b"]


async def test_token_is_required_when_configured(aiohttp_client):
    table = FrameTable()
    table.frames["s1"] = (solid(64, 64, (0, 0, 0)), 1)
    client = await aiohttp_client(PreviewRoutes(table, TrickleSettings(token="sesame")).get_app())
    assert (await client.get("/trickle/preview/s1.jpg")).status == 401
    ok = await client.get("/trickle/preview/s1.jpg", headers={"Authorization": "Bearer sesame"})
    assert ok.status == 200
