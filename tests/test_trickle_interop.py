"""Interop with a foreign trickle client: pytrickle 0.1.6, running in its own venv ($PYTRICKLE_PY).

pytrickle publishes to our relay and our subscriber reads; our publisher writes and pytrickle's
subscriber reads. Bytes must match exactly. The peers are scripts in ``tests/trickle_peers``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from comfy_trickle.trickle import RunningRelay, TricklePublisher, TrickleSubscriber
from trickle_peers.payload import segment_payload

PEERS = Path(__file__).parent / "trickle_peers"
PYTRICKLE_PY = os.environ.get("PYTRICKLE_PY", "")
SEGMENTS = 24
SIZE = 100 * 1024 + 17  # several HTTP chunks, and not a round number
WINDOW = 3  # segments a writer may run ahead of the reader (the relay keeps 5)

CHANNEL = "interop"

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.relay(channels=[(CHANNEL, "video/MP2T")]),
    pytest.mark.skipif(
        not PYTRICKLE_PY or not Path(PYTRICKLE_PY).is_file(),
        reason="PYTRICKLE_PY (the pytrickle peer venv's python) is unset or missing; source scripts/env.sh",
    ),
]


async def start_peer(script: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        PYTRICKLE_PY,
        str(PEERS / script),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish_peer(process: asyncio.subprocess.Process) -> str:
    """Wait for the peer to exit (killing it if it hangs); returns its stderr for failure messages."""
    try:
        await asyncio.wait_for(process.wait(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    return (await process.stderr.read()).decode(errors="replace")


async def test_pytrickle_publisher_to_our_subscriber(relay: RunningRelay) -> None:
    url = relay.channel_url(CHANNEL)
    subscriber = TrickleSubscriber(url, start_seq=0)
    peer = await start_peer("pytrickle_publish.py", url, str(SEGMENTS), str(SIZE))
    assert peer.stdin is not None
    try:
        peer.stdin.write(b"go\n" * WINDOW)
        await peer.stdin.drain()
        for seq in range(SEGMENTS):
            segment = await asyncio.wait_for(subscriber.next_segment(), 30)
            assert segment is not None
            data = await asyncio.wait_for(segment.read_all(), 30)
            assert segment.seq == seq
            assert len(data) == SIZE
            assert data == segment_payload(seq, SIZE), f"segment {seq} differs"
            if seq + WINDOW < SEGMENTS:
                peer.stdin.write(b"go\n")
                await peer.stdin.drain()
        peer.stdin.close()
        stderr = await finish_peer(peer)
        assert peer.returncode == 0, stderr
    finally:
        if peer.returncode is None:
            peer.kill()
            await peer.wait()
        await subscriber.close()


async def test_our_publisher_to_pytrickle_subscriber(relay: RunningRelay, tmp_path: Path) -> None:
    url = relay.channel_url(CHANNEL)
    peer = await start_peer("pytrickle_subscribe.py", url, str(tmp_path))
    assert peer.stdout is not None
    read: list[tuple[int, int]] = []

    async def await_peer_line() -> str:
        line = (await asyncio.wait_for(peer.stdout.readline(), 30)).decode().strip()  # type: ignore[union-attr]
        if line.startswith("READ "):
            _, seq, size = line.split()
            read.append((int(seq), int(size)))
        return line

    try:
        publisher = TricklePublisher(url)
        for seq in range(SEGMENTS):
            while seq - len(read) >= WINDOW:
                assert await await_peer_line() != "", "pytrickle subscriber exited early"
            data = segment_payload(seq, SIZE)
            async with await publisher.open_segment() as segment:
                for start in range(0, SIZE, 16 * 1024):
                    await segment.write(data[start : start + 16 * 1024])
        while len(read) < SEGMENTS:
            assert await await_peer_line() != "", "pytrickle subscriber exited early"
        await publisher.close()  # DELETE: pytrickle must see the end of the stream
        assert await await_peer_line() == "END"
        stderr = await finish_peer(peer)
        assert peer.returncode == 0, stderr
    finally:
        if peer.returncode is None:
            peer.kill()
            await peer.wait()
    assert read == [(seq, SIZE) for seq in range(SEGMENTS)]
    for seq in range(SEGMENTS):
        assert (tmp_path / f"{seq}.bin").read_bytes() == segment_payload(seq, SIZE), f"segment {seq} differs"
