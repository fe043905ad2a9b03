"""Browser camera ingest (dev/camera.py) and the full-rate player route (dev/player.py) on the real dev
routes, served by aiohttp on loopback: H.264 access units in over the websocket come out of the relay
channel as decodable MPEG-TS, and the player hands the channel's access units back undecoded."""

from __future__ import annotations

import asyncio
import io
import struct
from fractions import Fraction

import av
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from comfy_trickle.dev.camera import AUDIO_FLAG, JPEG_FLAG, MAX_UNITS_PER_S, UNIT_HEADER
from comfy_trickle.dev.player import EVENT_HEADER, KIND_UNIT
from comfy_trickle.dev.routes import DevRoutes
from comfy_trickle.media.decoder import StreamDecoder
from comfy_trickle.media.synthetic import make_test_frame, read_frame_index
from comfy_trickle.routes.settings import TrickleSettings
from comfy_trickle.trickle.subscriber import TrickleSubscriber

pytestmark = pytest.mark.timeout(120)
WIDTH, HEIGHT, FPS = 128, 96, 30


def encode_units(count: int, gop: int = 10) -> list[tuple[bytes, int, bool]]:
    """``count`` synthetic frames as Annex B access units (what WebCodecs sends), a keyframe every ``gop``."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.time_base = Fraction(1, FPS)
    encoder.options = {"tune": "zerolatency", "preset": "ultrafast", "g": str(gop), "bf": "0"}
    units = []
    for index in range(count):
        frame = av.VideoFrame.from_ndarray(make_test_frame(index, WIDTH, HEIGHT), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = index
        units += [(bytes(p), index * 1_000_000 // FPS, p.is_keyframe) for p in encoder.encode(frame)]
    units += [(bytes(p), len(units) * 1_000_000 // FPS, p.is_keyframe) for p in encoder.encode(None)]
    return units


def message(data: bytes, timestamp_us: int, key: bool) -> bytes:
    return UNIT_HEADER.pack(1 if key else 0, timestamp_us) + data


@pytest.fixture
async def client():
    dev = DevRoutes(TrickleSettings())
    async with TestClient(TestServer(dev.get_app(), host="127.0.0.1")) as test_client:
        test_client.dev = dev  # type: ignore[attr-defined]
        yield test_client
    await dev.stop_all()


async def open_camera(client: TestClient, name: str, **extra: object) -> dict:
    response = await client.post(
        "/trickle/camera", json={"name": name, "width": WIDTH, "height": HEIGHT, **extra}
    )
    assert response.status == 200, await response.text()
    return await response.json()


async def assert_channel_ends(client: TestClient, name: str) -> None:
    for _ in range(100):
        if name not in client.dev.relay.channels:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"channel {name} is still open")


async def decode_channel(url: str, want: int) -> list[int]:
    """Frame indices decoded from a relay channel, from its first segment."""
    frames: list = []
    decoder = StreamDecoder(frames.append, max_fps=None)
    decoder.start()
    try:
        async with TrickleSubscriber(url, start_seq=0) as subscriber:
            async for segment in subscriber:
                first = True
                while chunk := await segment.read_chunk():
                    decoder.feed(chunk, segment_start=first)
                    first = False
                if len(frames) >= want:
                    break
    finally:
        decoder.end_of_input()
        decoder.join(5)
    return [read_frame_index(frame.rgb) for frame in frames]


async def test_camera_units_become_decodable_segments_and_the_player_returns_them(client):
    camera = await open_camera(client, "cam-a")
    assert camera["subscribe_url"].endswith("/trickle/relay/cam-a")
    assert camera["publish_url"].endswith("/trickle/relay/cam-a-out")
    units = encode_units(40)
    socket = await client.ws_connect(camera["socket_path"])
    player = await client.get("/trickle/player/cam-a")
    assert player.status == 200
    reader = asyncio.create_task(decode_channel(camera["subscribe_url"], want=len(units)))
    for data, timestamp_us, key in units:
        await socket.send_bytes(message(data, timestamp_us, key))
        await asyncio.sleep(1 / FPS)
    await socket.close()
    indices = await asyncio.wait_for(reader, 30)
    # Every frame, in order, one segment per keyframe (4 GOPs of 10).
    assert indices == list(range(40))

    # The player streamed the same access units (Annex B, undecoded) and then the end of the channel.
    body = await asyncio.wait_for(player.read(), 30)
    got, events, offset = [], [], 0
    while offset < len(body):
        length, kind = EVENT_HEADER.unpack_from(body, offset)
        payload = body[offset + 5 : offset + 4 + length]
        if kind == KIND_UNIT:
            flags, timestamp_us, _demuxed_ms = struct.unpack_from(">Bqd", payload)
            got.append((payload[17:], bool(flags & 1), timestamp_us))
        else:
            events.append(payload.decode())
        offset += 4 + length
    assert events == ['{"type": "end"}']
    decoder = av.CodecContext.create("h264", "r")
    decoded = [f for data, _k, _t in got for f in decoder.decode(av.Packet(data))]
    decoded += decoder.decode(None)
    shown = [read_frame_index(f.to_ndarray(format="rgb24")) for f in decoded]
    # The player joined at the channel's current segment: a suffix of the frames, in order, keyframe first.
    assert got and got[0][1] is True
    assert shown == list(range(shown[0], 40)) and len(shown) >= 10
    timestamps = [t for _d, _k, t in got]
    assert timestamps == sorted(timestamps)


def encode_tone(seconds: float, hertz: float = 440.0) -> list[tuple[bytes, int]]:
    """A tone as Opus packets in 20 ms frames (what WebCodecs' AudioEncoder sends), with µs timestamps."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48_000, "mono", "s16"
    encoder.time_base = Fraction(1, 48_000)
    samples = int(seconds * 48_000)
    tone = (np.sin(2 * np.pi * hertz * np.arange(samples) / 48_000) * 12_000).astype(np.int16)
    packets = []
    for start in range(0, samples - 959, 960):
        frame = av.AudioFrame.from_ndarray(tone[None, start : start + 960], format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48_000, start
        packets += [bytes(p) for p in encoder.encode(frame)]
    return [(data, index * 20_000) for index, data in enumerate(packets)]


async def read_channel_bytes(url: str, segments: int) -> list[bytes]:
    """The first ``segments`` segments of a relay channel, each as its TS bytes."""
    got = []
    async with TrickleSubscriber(url, start_seq=0) as subscriber:
        async for segment in subscriber:
            data = b""
            while chunk := await segment.read_chunk():
                data += chunk
            got.append(data)
            if len(got) >= segments:
                break
    return got


async def test_camera_sound_is_muxed_as_opus_beside_the_video(client):
    camera = await open_camera(client, "cam-s", audio_channels=1)
    units = encode_units(40)  # 4 GOPs of 10 frames: 4 segments, 1.33 s
    tone = encode_tone(1.3)
    socket = await client.ws_connect(camera["socket_path"])
    reader = asyncio.create_task(read_channel_bytes(camera["subscribe_url"], segments=4))
    # Both tracks in timestamp order, as the browser's two encoders deliver them.
    messages = [(t, message(d, t, k)) for d, t, k in units]
    messages += [(t, UNIT_HEADER.pack(AUDIO_FLAG, t) + d) for d, t in tone]
    for _t, data in sorted(messages, key=lambda item: item[0]):
        await socket.send_bytes(data)
        await asyncio.sleep(0.01)
    await socket.close()
    segments = await asyncio.wait_for(reader, 30)
    assert len(segments) == 4
    video_pts, audio_pts, pcm = [], [], []
    opus = av.CodecContext.create("opus", "r")
    for data in segments:  # each segment decodes on its own and carries both tracks
        with av.open(io.BytesIO(data), format="mpegts") as container:
            assert container.streams.video and container.streams.audio
            assert container.streams.audio[0].codec_context.name == "opus"
            for packet in container.demux():
                if packet.size == 0:
                    continue
                if packet.stream.type == "video":
                    video_pts.append(float(packet.pts * packet.time_base))
                else:
                    audio_pts.append(float(packet.pts * packet.time_base))
                    pcm += [f.to_ndarray().ravel() for f in opus.decode(packet)]
    assert video_pts == sorted(video_pts) and audio_pts == sorted(audio_pts)
    assert len(video_pts) == 40 and len(audio_pts) >= 60  # 1.3 s of 20 ms packets, all after the keyframe
    # Same clock: the sound starts with the first keyframe and spans the video's duration.
    assert abs(audio_pts[0] - video_pts[0]) < 0.05 and audio_pts[-1] > video_pts[-1] - 0.1
    rms = float(np.sqrt(np.mean(np.concatenate(pcm).astype(np.float64) ** 2)))
    assert rms > 0.1  # the tone (0.37 full scale), not silence
    # Sound on a socket that did not declare it: closed with the reason.
    camera = await open_camera(client, "cam-t")
    socket = await client.ws_connect(camera["socket_path"])
    await socket.send_bytes(UNIT_HEADER.pack(AUDIO_FLAG, 0) + tone[0][0])
    closing = await asyncio.wait_for(socket.receive(), 10)
    assert closing.type.name in ("CLOSE", "CLOSED") and socket.close_code == 1008
    bad = await client.post("/trickle/camera", json={"width": WIDTH, "height": HEIGHT, "audio_channels": 6})
    assert bad.status == 400 and "audio_channels" in (await bad.json())["error"]


async def test_camera_jpeg_fallback_is_encoded_into_decodable_segments(client):
    from comfy_trickle.media.jpeg import encode_jpeg

    camera = await open_camera(client, "cam-j")
    socket = await client.ws_connect(camera["socket_path"])
    reader = asyncio.create_task(decode_channel(camera["subscribe_url"], want=30))
    for index in range(30):
        jpeg = encode_jpeg(make_test_frame(index, WIDTH, HEIGHT), WIDTH)
        await socket.send_bytes(UNIT_HEADER.pack(JPEG_FLAG, index * 1_000_000 // FPS) + jpeg)
        await asyncio.sleep(1 / FPS)
    await socket.close()
    indices = await asyncio.wait_for(reader, 30)
    assert indices == list(range(30))
    # Not a JPEG: the socket is closed with the reason.
    camera = await open_camera(client, "cam-k")
    socket = await client.ws_connect(camera["socket_path"])
    await socket.send_bytes(UNIT_HEADER.pack(JPEG_FLAG, 0) + b"not a jpeg at all")
    closing = await asyncio.wait_for(socket.receive(), 10)
    assert closing.type.name in ("CLOSE", "CLOSED") and socket.close_code == 1008
    await assert_channel_ends(client, "cam-k")


async def test_camera_route_errors_are_json(client):
    bad = await client.post("/trickle/camera", json={"name": "cam-b", "width": 127, "height": 96})
    assert bad.status == 400 and "even" in (await bad.json())["error"]
    missing = await client.post("/trickle/camera", json={"name": "cam-b"})
    assert missing.status == 400 and "width" in (await missing.json())["error"]
    camera = await open_camera(client, "cam-b")
    again = await client.post("/trickle/camera", json={"name": "cam-b", "width": WIDTH, "height": HEIGHT})
    assert again.status == 409
    wrong = await client.get("/trickle/camera/cam-b/socket?ticket=nope")
    assert wrong.status == 403 and "ticket" in (await wrong.json())["error"]
    socket = await client.ws_connect(camera["socket_path"])
    reused = await client.get(camera["socket_path"])
    assert reused.status == 403  # one use
    await socket.send_bytes(b"short")
    closing = await socket.receive()
    assert closing.type.name in ("CLOSE", "CLOSED") and socket.close_code == 1008
    nothing = await client.get("/trickle/player/no-such-channel")
    assert nothing.status == 404 and "not found" in (await nothing.json())["error"]


async def test_camera_flood_is_cut_off(client):
    camera = await open_camera(client, "cam-c")
    socket = await client.ws_connect(camera["socket_path"])
    data, _t, _k = encode_units(1)[0]
    for index in range(int(MAX_UNITS_PER_S) + 20):
        if socket.closed:
            break
        await socket.send_bytes(message(data, index, True))
    closing = await asyncio.wait_for(socket.receive(), 10)
    assert closing.type.name in ("CLOSE", "CLOSED")
    assert socket.close_code == 1008
    # The cut-off camera's channel ends, so a stream reading it sees the end instead of waiting.
    await assert_channel_ends(client, "cam-c")


async def test_a_player_whose_viewer_left_ends_on_a_quiet_channel(client):
    client.dev.relay.create_channel("quiet")
    response = await client.get("/trickle/player/quiet")
    assert response.status == 200
    assert client.dev.player.players == 1
    response.close()  # the viewer goes away; nothing is ever published on the channel
    for _ in range(60):
        if client.dev.player.players == 0:
            break
        await asyncio.sleep(0.05)
    assert client.dev.player.players == 0


async def test_camera_and_player_need_the_token():
    dev = DevRoutes(TrickleSettings(token="s3cret"))
    async with TestClient(TestServer(dev.get_app(), host="127.0.0.1")) as client:
        denied = await client.post("/trickle/camera", json={"width": WIDTH, "height": HEIGHT})
        assert denied.status == 401 and "token" in (await denied.json())["error"].lower()
        dev.relay.create_channel("any")
        assert (await client.get("/trickle/player/any")).status == 401
        ok = await client.post("/trickle/camera", json={"width": WIDTH, "height": HEIGHT},
                               headers={"Authorization": "Bearer s3cret"})  # fmt: skip
        assert ok.status == 200
        playing = await client.get("/trickle/player/any", headers={"Authorization": "Bearer s3cret"})
        assert playing.status == 200
        playing.close()
    await dev.stop_all()
