"""The relay process dies mid-stream: our client reports a clear error, or resumes once it is back.

The relay runs as its own process (``python -m comfy_trickle.trickle serve``), so killing it is a real
crash: connections reset, nothing is closed gracefully.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import comfy_trickle
import pytest
from comfy_trickle.devtools.processes import free_port
from comfy_trickle.trickle import (
    SubscribedSegment,
    TrickleError,
    TricklePublisher,
    TrickleRetriesExhausted,
    TrickleSubscriber,
)

pytestmark = pytest.mark.timeout(90)

CHANNEL = "video"


def child_env() -> dict[str, str]:
    """This environment, with the folder ``comfy_trickle`` was imported from on PYTHONPATH."""
    import_root = str(Path(comfy_trickle.__file__).parent.parent)
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [import_root, env.get("PYTHONPATH", "")]))
    return env


async def start_relay(port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "comfy_trickle.trickle",
        "serve",
        "--port",
        str(port),
        "--create",
        f"{CHANNEL}:video/MP2T",
        "--log-level",
        "WARNING",
        env=child_env(),
    )
    async with aiohttp.ClientSession() as session:
        for _ in range(300):  # up to 30 s on a loaded machine
            if process.returncode is not None:
                raise RuntimeError(f"relay exited with {process.returncode}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/{CHANNEL}/next") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError("relay did not start")


async def crash(process: asyncio.subprocess.Process) -> None:
    process.kill()
    await process.wait()


@pytest.fixture
async def relay_port() -> AsyncIterator[tuple[int, list[asyncio.subprocess.Process]]]:
    processes: list[asyncio.subprocess.Process] = []
    yield free_port(), processes
    for process in processes:
        if process.returncode is None:
            await crash(process)


def tagged(seq: int) -> bytes:
    return f"segment {seq} ".encode() * 500


async def stream_some(publisher: TricklePublisher, subscriber: TrickleSubscriber, count: int) -> None:
    for seq in range(count):
        await publisher.write_segment(tagged(seq))
        segment = await asyncio.wait_for(subscriber.next_segment(), 10)
        assert segment is not None
        assert (segment.seq, await segment.read_all()) == (seq, tagged(seq))


async def test_relay_gone_for_good_gives_clear_errors_not_hangs(relay_port) -> None:
    port, processes = relay_port
    processes.append(await start_relay(port))
    url = f"http://127.0.0.1:{port}/{CHANNEL}"
    subscriber = TrickleSubscriber(url, start_seq=0, max_retries=3, retry_backoff_s=0.05)
    publisher = TricklePublisher(url, max_retries=3, retry_backoff_s=0.05)
    try:
        await stream_some(publisher, subscriber, 3)
        await crash(processes[0])
        with pytest.raises(TrickleRetriesExhausted):
            await asyncio.wait_for(subscriber.next_segment(), 20)
        with pytest.raises(TrickleError):
            await asyncio.wait_for(publisher.write_segment(b"nobody listens"), 20)
    finally:
        await subscriber.close()
        await publisher.close()


async def test_relay_restarted_mid_stream_client_resumes(relay_port) -> None:
    port, processes = relay_port
    processes.append(await start_relay(port))
    url = f"http://127.0.0.1:{port}/{CHANNEL}"
    # A retry budget (about 10 s) long enough to span the restart.
    subscriber = TrickleSubscriber(url, start_seq=0, max_retries=25, retry_backoff_s=0.05, max_backoff_s=0.5)
    publisher = TricklePublisher(url, max_retries=3, retry_backoff_s=0.05)
    try:
        await stream_some(publisher, subscriber, 3)
        await crash(processes[0])
        processes.append(await start_relay(port))  # same port, channel created again, nextWrite back at 0

        async def first_segment_after_restart() -> SubscribedSegment:
            while True:
                try:
                    segment = await subscriber.next_segment()
                except TrickleError:
                    continue  # a segment cut by the crash; the subscriber goes on
                assert segment is not None, "stream ended instead of resuming"
                if segment.seq >= 3:
                    data = await segment.read_all()
                    if data:
                        assert data == tagged(segment.seq)
                        return segment

        resumed = asyncio.create_task(first_segment_after_restart())
        for _ in range(100):  # the publisher goes on; a segment lost in the crash is not fatal
            if resumed.done():
                break
            try:
                await publisher.write_segment(tagged(publisher.next_seq))
            except TrickleError:
                pass
            await asyncio.sleep(0.1)
        segment = await asyncio.wait_for(resumed, 20)
        assert segment.seq >= 3
    finally:
        await subscriber.close()
        await publisher.close()
