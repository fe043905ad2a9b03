"""The 23 conformance cases of trickle-protocol.md section A15, over real HTTP against our dev relay.

Each case is one test named after it. Requests are plain aiohttp (or a raw socket where a Go-style
publisher must send its headers before its first body byte), so these tests check the server, not our
client; case 23 (TLS) is client-only and uses our client.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from comfy_trickle.trickle import errors
from comfy_trickle.trickle.publisher import TricklePublisher
from comfy_trickle.trickle.relay import RelayRequestError, TrickleRelay
from comfy_trickle.trickle.relay_server import RunningRelay, serve_relay
from comfy_trickle.trickle.subscriber import TrickleSubscriber

CHANNEL = "testest"

pytestmark = [pytest.mark.timeout(30), pytest.mark.relay(channels=[(CHANNEL, "text/plain")])]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, url: str, body: bytes = b"", **kw: object
) -> aiohttp.ClientResponse:
    async with http.post(url, data=body, **kw) as resp:  # type: ignore[arg-type]
        await resp.read()
        return resp


async def get(http: aiohttp.ClientSession, url: str) -> tuple[aiohttp.ClientResponse, bytes]:
    async with http.get(url) as resp:
        return resp, await resp.read()


async def write_all(http: aiohttp.ClientSession, base: str, bodies: list[bytes], start: int = 0) -> None:
    for offset, body in enumerate(bodies):
        resp = await post(http, f"{base}/{start + offset}", body)
        assert resp.status == 200, resp.status


async def still_pending(task: asyncio.Future[object], wait_s: float = 0.15) -> bool:
    """True if ``task`` has not finished after ``wait_s`` (used only to check that a request blocks)."""
    await asyncio.sleep(wait_s)
    return not task.done()


class OpenPost:
    """A streaming POST whose body is fed piece by piece and ended explicitly (headers go with byte 1)."""

    def __init__(self, http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(http, url, headers or {}))

    async def _body(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    async def _run(
        self, http: aiohttp.ClientSession, url: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str]]:
        async with http.post(url, data=self._body(), headers=headers) as resp:
            await resp.read()
            return resp.status, dict(resp.headers)

    def send(self, data: bytes) -> None:
        self._queue.put_nowait(data)

    async def finish(self) -> tuple[int, dict[str, str]]:
        self._queue.put_nowait(None)
        return await self.task


async def raw_preconnected_post(
    relay: RunningRelay, path: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A Go-style publisher: request headers sent now, body (chunked) not started."""
    reader, writer = await asyncio.open_connection(relay.host, relay.port)
    writer.write(
        f"POST /{path} HTTP/1.1\r\nHost: {relay.host}:{relay.port}\r\n"
        "Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n".encode()
    )
    await writer.drain()
    return reader, writer


async def read_raw_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    return status, headers


# --------------------------------------------------------------------------------------------- 1-8


async def test_case01_unknown_channel(relay: RunningRelay, http: aiohttp.ClientSession) -> None:
    resp = await post(http, relay.url + "missing/0", b"x")
    assert resp.status == 404
    assert resp.headers.get("Connection", "").lower() == "close"
    resp, _ = await get(http, relay.url + "missing/0")
    assert resp.status == 404
    assert (await post(http, relay.url + "missing")).status == 404


async def test_case02_basic_round_trip_and_headers(relay: RunningRelay, http: aiohttp.ClientSession) -> None:
    base = relay.channel_url(CHANNEL)
    await write_all(http, base, [b"first", b"second"])
    for seq, body in enumerate([b"first", b"second"]):
        resp, data = await get(http, f"{base}/{seq}")
        assert (resp.status, data) == (200, body)
        assert resp.headers["Lp-Trickle-Seq"] == str(seq)
        assert resp.headers["Lp-Trickle-Latest"] == "2"
        assert resp.headers["Content-Type"] == "text/plain"


async def test_case03_eos_for_waiting_requests(relay: RunningRelay, http: aiohttp.ClientSession) -> None:
    base = relay.channel_url(CHANNEL)
    await write_all(http, base, [b"first", b"second"])
    pending_get = asyncio.create_task(get(http, f"{base}/2"))
    reader, writer = await raw_preconnected_post(relay, f"{CHANNEL}/2")
    assert await still_pending(pending_get)
    assert (await http.delete(base)).status == 200
    resp, data = await pending_get
    assert (resp.status, data) == (200, b"")
    assert resp.headers["Lp-Trickle-Closed"] == "terminated"
    status, headers = await asyncio.wait_for(read_raw_response(reader), 5)
    writer.close()
    assert status == 200
    assert headers["lp-trickle-closed"] == "terminated"
    assert headers["lp-trickle-seq"] == "2"
    assert headers["connection"].lower() == "close"


async def test_case04_after_delete(relay: RunningRelay, http: aiohttp.ClientSession) -> None:
    base = relay.channel_url(CHANNEL)
    await write_all(http, base, [b"first"])
    assert (await http.delete(base)).status == 200
    resp, _ = await get(http, f"{base}/0")
    assert resp.status == 404
    assert (await post(http, f"{base}/1", b"late")).status == 404
    assert (await http.delete(base)).status == 400


async def test_case05_server_side_create_contract(http: aiohttp.ClientSession) -> None:
    relay = TrickleRelay()
    with pytest.raises(KeyError):
        relay.write_segment("lonely", b"data")
    assert "lonely" not in relay.channels
    relay.create_channel("lonely", "text/plain")
    assert relay.write_segment("lonely", b"data") == 0
    async with serve_relay(relay) as running:
        resp, data = await get(http, running.channel_url("lonely") + "/0")
        assert (resp.status, data) == (200, b"data")
        assert (await post(http, running.channel_url("nope") + "/0", b"x")).status == 404
        assert "nope" not in relay.channels
    async with serve_relay(autocreate=True) as running:
        assert (await post(http, running.channel_url("auto") + "/0", b"made")).status == 200
        assert running.relay.channels.get("auto") is not None
        resp, data = await get(http, running.channel_url("auto") + "/0")
        assert data == b"made"


async def test_case06_http_create_contract(http: aiohttp.ClientSession) -> None:
    async with serve_relay(autocreate=True) as running:
        assert (await post(http, running.url + "created")).status == 200
        assert (await post(http, running.url + "published/0", b"hello")).status == 200
        assert (await post(http, running.url + "delete-test")).status == 200
        assert (await http.delete(running.url + "delete-test")).status == 200
    async with serve_relay(autocreate=False) as running:
        assert (await post(http, running.url + "created")).status == 404
        assert (await post(http, running.url + "published/0", b"hello")).status == 404


async def test_case07_before_create_hook(http: aiohttp.ClientSession) -> None:
    calls: list[tuple[str, str | None, bool]] = []

    def hook(request: aiohttp.web.Request, name: str) -> None:
        calls.append((name, request.headers.get("Expect-Content"), name in relay.channels))
        if name == "blocked":
            raise RelayRequestError(403, "not allowed")
        if name == "broken":
            raise RuntimeError("hook bug")

    relay = TrickleRelay(autocreate=True, before_create=hook)
    async with serve_relay(relay) as running:
        resp = await post(http, running.url + "created", headers={"Expect-Content": "text/plain"})
        assert resp.status == 200
        assert calls[0] == ("created", "text/plain", False)
        assert relay.channels.get("created").mime_type == "text/plain"
        assert (await get(http, running.url + "created/next"))[0].status == 200
        assert (await post(http, running.url + "blocked")).status == 403
        assert (await get(http, running.url + "blocked/next"))[0].status == 404
        assert (await post(http, running.url + "broken")).status == 500
        assert "broken" not in relay.channels


async def test_case08_before_delete_hook(http: aiohttp.ClientSession) -> None:
    seen: list[bool] = []

    async def hook(request: aiohttp.web.Request, name: str) -> None:
        seen.append(name in relay.channels)
        if name == "guarded":
            raise RelayRequestError(401, "no token")
        if name == "broken":
            raise ValueError("hook bug")

    relay = TrickleRelay(before_delete=hook)
    for name in ("plain", "guarded", "broken"):
        relay.create_channel(name)
    async with serve_relay(relay) as running:
        assert (await http.delete(running.url + "plain")).status == 200
        assert seen == [True]
        assert (await get(http, running.url + "plain/next"))[0].status == 404
        assert (await http.delete(running.url + "guarded")).status == 401
        assert (await get(http, running.url + "guarded/next"))[0].status == 200
        assert (await http.delete(running.url + "broken")).status == 500
        assert (await get(http, running.url + "broken/next"))[0].status == 200


# --------------------------------------------------------------------------------------------- 9-16


async def test_case09_random_access_inside_window(relay: RunningRelay, http: aiohttp.ClientSession) -> None:
    base = relay.channel_url(CHANNEL)
    bodies = [b"first", b"second", b"third", b"fourth"]
    await write_all(http, base, bodies)
    for start in range(4):
        for seq in range(start, 4):
            assert (await get(http, f"{base}/{seq}"))[1] == bodies[seq]
    for seq in (3, 2, 1, 0):
        assert (await get(http, f"{base}/{seq}"))[1] == bodies[seq]


async def test_case10_subscriber_start_positions(relay: RunningRelay, http: aiohttp.ClientSession) -> None:
    base = relay.channel_url(CHANNEL)
    from_start = asyncio.create_task(get(http, f"{base}/-1"))
    assert await still_pending(from_start)
    await write_all(http, base, [b"zeroth"])
    resp, data = await from_start
    assert (resp.headers["Lp-Trickle-Seq"], data) == ("0", b"zeroth")
    await write_all(http, base, [b"first"], start=1)
    resp, data = await get(http, f"{base}/-2")
    assert (resp.headers["Lp-Trickle-Seq"], data) == ("1", b"first")
    next_one = asyncio.create_task(get(http, f"{base}/-1"))
    assert await still_pending(next_one)
    await write_all(http, base, [b"second", b"third", b"fourth"], start=2)
    resp, data = await next_one
    assert (resp.headers["Lp-Trickle-Seq"], data) == ("2", b"second")
    bodies = [b"first", b"second", b"third", b"fourth"]
    for seq in range(1, 5):
        assert (await get(http, f"{base}/{seq}"))[1] == bodies[seq - 1]


async def test_case11_grace_precreation(relay: RunningRelay, http: aiohttp.ClientSession) -> None:
    base = relay.channel_url(CHANNEL)
    ahead = asyncio.create_task(get(http, f"{base}/1"))
    assert await still_pending(ahead)
    resp, _ = await get(http, f"{base}/2")  # nextWrite + 2
    assert resp.status == 470
    await write_all(http, base, [b"zero", b"one"])
    resp, data = await ahead
    assert (resp.status, data) == (200, b"one")


async def test_case12_window_overrun_and_470(relay: RunningRelay, http: aiohttp.ClientSession) -> None:
    base = relay.channel_url(CHANNEL)
    await write_all(http, base, [b"x%d" % i for i in range(6)])
    waiting = asyncio.create_task(get(http, f"{base}/-1"))
    assert await still_pending(waiting)
    await write_all(http, base, [b"abc", b"def"], start=6)
    resp, data = await waiting
    assert (resp.headers["Lp-Trickle-Seq"], data) == ("6", b"abc")
    assert (await get(http, f"{base}/7"))[1] == b"def"
    await write_all(http, base, [b"y%d" % i for i in range(8, 14)], start=8)
    resp, data = await get(http, f"{base}/8")
    assert resp.status == 470
    assert resp.headers["Lp-Trickle-Latest"] == "14"
    assert resp.headers["Lp-Trickle-Seq"] == "8"
    assert data == b"Entry not found"
    resp, _ = await get(http, f"{base}/-2")
    assert resp.headers["Lp-Trickle-Seq"] == "13"
    await write_all(http, base, [b"ghi"], start=14)
    assert (await get(http, f"{base}/14"))[1] == b"ghi"
    waiting = asyncio.create_task(get(http, f"{base}/-1"))
    assert await still_pending(waiting)
    await write_all(http, base, [b"jkl", b"mno"], start=15)
    resp, data = await waiting
    assert (resp.headers["Lp-Trickle-Seq"], data) == ("15", b"jkl")
    assert (await get(http, f"{base}/16"))[1] == b"mno"


async def test_case13_empty_segment_advances_sequence(
    relay: RunningRelay, http: aiohttp.ClientSession
) -> None:
    base = relay.channel_url(CHANNEL)
    resp = await post(http, f"{base}/0", b"")
    assert (resp.status, resp.headers["Lp-Trickle-Seq"]) == (200, "0")
    resp, data = await get(http, f"{base}/0")
    assert (resp.status, data) == (200, b"")
    assert resp.headers["Lp-Trickle-Seq"] == "0"
    assert resp.headers["Lp-Trickle-Latest"] == "1"
    assert "Lp-Trickle-Closed" not in resp.headers


async def test_case14_preconnect_completes_as_empty_segment_on_close(
    relay: RunningRelay, http: aiohttp.ClientSession
) -> None:
    base = relay.channel_url(CHANNEL)
    seen: list[tuple[str, int, str | None]] = []

    async def reader() -> int:
        seq = -1
        while True:
            resp, data = await get(http, f"{base}/{seq}")
            if resp.status == 404:
                return resp.status
            seen.append((resp.headers["Lp-Trickle-Seq"], len(data), resp.headers.get("Lp-Trickle-Closed")))
            if resp.headers.get("Lp-Trickle-Closed"):
                return resp.status
            seq = int(resp.headers["Lp-Trickle-Seq"]) + 1

    reading = asyncio.create_task(reader())
    await asyncio.sleep(0.05)
    await write_all(http, base, [b"hello"])
    _, writer = await raw_preconnected_post(relay, f"{CHANNEL}/1")
    await asyncio.sleep(0.05)
    assert (await http.delete(base)).status == 200
    await asyncio.wait_for(reading, 5)
    writer.close()
    assert seen == [("0", 5, None), ("1", 0, "terminated")]
    assert (await get(http, f"{base}/2"))[0].status == 404


async def test_case15_same_seq_repost_appends(relay: RunningRelay, http: aiohttp.ClientSession) -> None:
    base = relay.channel_url(CHANNEL)
    first = OpenPost(http, f"{base}/0")
    first.send(b"Hello")
    async with http.get(f"{base}/0") as resp:
        assert await resp.content.readexactly(5) == b"Hello"
        second = OpenPost(http, f"{base}/0")
        second.send(b"GoodbyWorld")
        assert await resp.content.readexactly(11) == b"GoodbyWorld"
        assert (await second.finish())[0] == 200
    assert (await first.finish())[0] == 200
    assert (await get(http, f"{base}/0"))[1] == b"HelloGoodbyWorld"


async def test_case16_publisher_reset(relay: RunningRelay, http: aiohttp.ClientSession) -> None:
    base = relay.channel_url(CHANNEL)
    old = OpenPost(http, f"{base}/0")
    old.send(b"Hello")
    async with http.get(f"{base}/0") as blocked:
        assert await blocked.content.readexactly(5) == b"Hello"
        resp = await post(http, f"{base}/-1", b"after-reset", headers={"Lp-Trickle-Reset": "true"})
        assert (resp.status, resp.headers["Lp-Trickle-Seq"]) == (200, "1")
        assert await asyncio.wait_for(blocked.content.read(), 5) == b""  # ends with no more data
    assert (await get(http, f"{base}/0"))[1] == b"Hello"
    assert (await get(http, f"{base}/1"))[1] == b"after-reset"
    old.send(b" late bytes")
    assert (await old.finish())[0] == 200


# --------------------------------------------------------------------------------------------- 17-22


async def test_case17_idle_sweep(http: aiohttp.ClientSession) -> None:
    async with serve_relay(
        channels=[("idle", "text/plain"), ("_internal", "text/plain")],
        idle_timeout_s=0.001,
        sweep_interval_s=0.01,
    ) as running:
        await asyncio.sleep(0.1)
        assert (await get(http, running.url + "idle/0"))[0].status == 404
        assert "idle" not in running.relay.channels
        assert (await get(http, running.url + "_internal/next"))[0].status == 200


async def test_case18_waiting_get_never_times_out_server_side(http: aiohttp.ClientSession) -> None:
    loop = asyncio.get_running_loop()
    real_time = loop.time
    offset = 0.0
    # Shortened clock: move the loop's clock (which the relay's channel clock follows here) 31 s ahead,
    # so any timer under 31 s -- a server-side read timeout, say -- fires at once.
    loop.time = lambda: real_time() + offset  # type: ignore[method-assign]
    try:
        async with serve_relay(
            channels=[(CHANNEL, "text/plain")], clock=loop.time, disconnect_poll_s=0.05
        ) as running:
            relay = running.relay
            waiting = asyncio.create_task(get(http, running.channel_url(CHANNEL) + "/-1"))
            await asyncio.sleep(0.1)
            assert relay.active_requests == 1
            offset = 31.0
            assert relay.sweep_now() == []  # 31 s without writes is well inside the idle timeout
            assert await still_pending(waiting, 0.3)
            assert relay.active_requests == 1
            waiting.cancel()  # the client gives up: the handler must be freed
            for _ in range(100):
                if relay.active_requests == 0:
                    break
                await asyncio.sleep(0.02)
            assert relay.active_requests == 0
    finally:
        loop.time = real_time  # type: ignore[method-assign]


async def test_case19_byte_exact_large_segments(relay: RunningRelay, http: aiohttp.ClientSession) -> None:
    base = relay.channel_url(CHANNEL)
    writer = OpenPost(http, f"{base}/0")
    writer.send(b"a" * 32 * 1024)
    writer.send(b"b" * 64 * 1024)
    await writer.finish()
    assert (await get(http, f"{base}/0"))[1] == b"a" * 32 * 1024 + b"b" * 64 * 1024
    incremental = OpenPost(http, f"{base}/1")
    incremental.send(b"hello")
    async with http.get(f"{base}/1") as resp:
        assert await resp.content.readexactly(5) == b"hello"
        incremental.send(b" world")
        assert await resp.content.readexactly(6) == b" world"
        await incremental.finish()
        assert await resp.content.read() == b""


async def test_case20_next(relay: RunningRelay, http: aiohttp.ClientSession) -> None:
    base = relay.channel_url(CHANNEL)
    resp, data = await get(http, f"{base}/next")
    assert (resp.status, data, resp.headers["Lp-Trickle-Latest"]) == (200, b"0", "0")
    await write_all(http, base, [b"a", b"b", b"c"])
    resp, data = await get(http, f"{base}/next")
    assert (data, resp.headers["Lp-Trickle-Latest"]) == (b"3", "3")
    assert (await get(http, relay.url + "unknown/next"))[0].status == 404


async def test_case21_segment_delete(relay: RunningRelay, http: aiohttp.ClientSession) -> None:
    base = relay.channel_url(CHANNEL)
    open_post = OpenPost(http, f"{base}/0")
    open_post.send(b"partial")
    async with http.get(f"{base}/0") as resp:
        assert await resp.content.readexactly(7) == b"partial"
        assert (await http.delete(f"{base}/0")).status == 200
        assert await asyncio.wait_for(resp.content.read(), 5) == b""  # the reader finishes
    await open_post.finish()
    assert (await http.delete(f"{base}/3")).status == 400
    assert (await http.delete(relay.url + "unknown/0")).status == 404


async def test_case22_invalid_seq(relay: RunningRelay, http: aiohttp.ClientSession) -> None:
    base = relay.channel_url(CHANNEL)
    assert (await get(http, f"{base}/abc"))[0].status == 400
    assert (await post(http, f"{base}/abc", b"x")).status == 400
    assert (await get(http, f"{base}/-3"))[0].status == 400
    assert (await post(http, f"{base}/-2", b"x")).status == 400
    assert (await http.delete(f"{base}/-1")).status == 400
    assert (await http.delete(f"{base}/zz")).status == 400


# --------------------------------------------------------------------------------------------- 23


def _self_signed_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        from cryptography import x509  # noqa: F401
    except ImportError:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
        return cert, key
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key


async def test_case23_tls_verified_by_default_insecure_opt_in(tmp_path: Path) -> None:
    import ssl

    cert, key = _self_signed_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async with serve_relay(ssl_context=context, channels=[(CHANNEL, "text/plain")]) as running:
        assert running.url.startswith("https://")
        running.relay.write_segment(CHANNEL, b"secret")
        strict = TrickleSubscriber(running.channel_url(CHANNEL), start_seq=0)
        try:
            with pytest.raises(errors.TrickleTLSError):
                await strict.next_segment()
        finally:
            await strict.close()
        strict_publisher = TricklePublisher(running.channel_url(CHANNEL))
        try:
            with pytest.raises(errors.TrickleTLSError):
                await strict_publisher.write_segment(b"refused")
        finally:
            await strict_publisher.close(delete_channel=False)
        assert running.relay.channels.get(CHANNEL).next_write == 1  # nothing got through
        insecure_publisher = TricklePublisher(running.channel_url(CHANNEL), verify_tls=False, rejoin=True)
        assert await insecure_publisher.write_segment(b"accepted") == 1
        await insecure_publisher.close(delete_channel=False)
        insecure = TrickleSubscriber(running.channel_url(CHANNEL), start_seq=0, verify_tls=False)
        try:
            segment = await insecure.next_segment()
            assert segment is not None
            assert await segment.read_all() == b"secret"
        finally:
            await insecure.close()
