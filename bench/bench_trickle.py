"""Benchmark of the trickle client and dev relay over loopback. Prints figures; asserts nothing.

    python bench/bench_trickle.py [--segments 1000] [--mib 64] [--in-process]

1. First-byte latency: the time from ``PublishedSegment.write()`` of a small segment (one 188-byte TS
   packet) to the subscriber's ``read_chunk()`` returning it, through the relay, with the subscriber's GET
   preconnected as in steady streaming. p50/p95 over ``--segments`` segments.
2. Throughput: 1 MiB segments (written in 64 KiB pieces) to 1 and to 4 subscribers; MiB/s delivered per
   subscriber. The publisher stays at most 3 segments ahead of the slowest subscriber (the relay keeps 5).

The relay runs as its own process (``python -m comfy_trickle.trickle serve``) unless ``--in-process``;
publisher and subscribers share this process's event loop, so the figures include their client overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import comfy_trickle
from comfy_trickle.trickle import TricklePublisher, TrickleSubscriber, serve_relay
from comfy_trickle.trickle.relay_server import _bind

TS_PACKET = b"\x47" + b"\x00" * 187
CHANNEL_LATENCY = "latency"
CHANNEL_THROUGHPUT = "throughput"
WINDOW = 3


def child_env() -> dict[str, str]:
    """This environment, with the folder ``comfy_trickle`` was imported from on PYTHONPATH."""
    import_root = str(Path(comfy_trickle.__file__).parent.parent)
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [import_root, env.get("PYTHONPATH", "")]))
    return env


@asynccontextmanager
async def relay_base_url(in_process: bool) -> AsyncIterator[str]:
    channels = [(CHANNEL_LATENCY, "video/MP2T"), (CHANNEL_THROUGHPUT, "video/MP2T")]
    if in_process:
        async with serve_relay(channels=channels) as running:
            yield running.url
        return
    sock = _bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    args = [
        sys.executable,
        "-m",
        "comfy_trickle.trickle",
        "serve",
        "--port",
        str(port),
        "--log-level",
        "WARNING",
    ]
    for name, mime in channels:
        args += ["--create", f"{name}:{mime}"]
    process = await asyncio.create_subprocess_exec(*args, env=child_env())
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/{CHANNEL_LATENCY}/next") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise RuntimeError("relay did not start")
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.kill()
        await process.wait()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def bench_latency(base: str, count: int) -> list[float]:
    url = base + CHANNEL_LATENCY
    latencies: list[float] = []
    async with TricklePublisher(url) as publisher, TrickleSubscriber(url, start_seq=0) as subscriber:
        for seq in range(count):
            incoming = asyncio.create_task(subscriber.next_segment())
            await asyncio.sleep(0.002)  # let the preconnected GET reach the relay, as in steady streaming
            segment = await publisher.open_segment()
            started = time.perf_counter()
            await segment.write(TS_PACKET)
            received = await incoming
            assert received is not None and received.seq == seq
            chunk = await received.read_chunk()
            latencies.append(time.perf_counter() - started)
            assert chunk == TS_PACKET
            await segment.close()
            assert await received.read_chunk() == b""
    return latencies


async def bench_throughput(base: str, subscribers: int, total_mib: int) -> tuple[float, int]:
    url = base + CHANNEL_THROUGHPUT
    payload = os.urandom(1024 * 1024)
    progress = [0] * subscribers
    advanced = asyncio.Condition()
    received_bytes = [0] * subscribers

    async def read(index: int, start_seq: int) -> None:
        async with TrickleSubscriber(url, start_seq=start_seq) as subscriber:
            for _ in range(total_mib):
                segment = await subscriber.next_segment()
                assert segment is not None
                async for chunk in segment.iter_chunks():
                    received_bytes[index] += len(chunk)
                async with advanced:
                    progress[index] += 1
                    advanced.notify_all()

    # Segments here continue after the previous run's, so subscribers start at the channel's next seq.
    async with aiohttp.ClientSession() as session, session.get(url + "/next") as response:
        start_seq = int(await response.text())
    readers = [asyncio.create_task(read(index, start_seq)) for index in range(subscribers)]
    publisher = TricklePublisher(url, rejoin=True, max_pending_bytes=256 * 1024)
    started = time.perf_counter()
    for done in range(total_mib):
        async with advanced:
            await advanced.wait_for(lambda done=done: min(progress) >= done - WINDOW)
        async with await publisher.open_segment() as segment:
            for offset in range(0, len(payload), 64 * 1024):
                await segment.write(payload[offset : offset + 64 * 1024])
    await asyncio.gather(*readers)
    elapsed = time.perf_counter() - started
    await publisher.close(delete_channel=False)
    assert all(count == total_mib * len(payload) for count in received_bytes)
    return total_mib / elapsed, sum(received_bytes)


async def main(args: argparse.Namespace) -> None:
    async with relay_base_url(args.in_process) as base:
        where = "in-process" if args.in_process else "separate process"
        print(
            f"trickle bench: relay {where} at {base}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
        )
        latencies = await asyncio.wait_for(bench_latency(base, args.segments), 300)
        ms = [value * 1000 for value in latencies]
        print(
            f"first-byte latency over {len(ms)} segments: p50 {statistics.median(ms):.2f} ms, "
            f"p95 {percentile(ms, 0.95):.2f} ms, max {max(ms):.2f} ms"
        )
        for subscribers in (1, 4):
            rate, delivered = await asyncio.wait_for(bench_throughput(base, subscribers, args.mib), 300)
            print(
                f"throughput, 1 MiB segments x {args.mib}, {subscribers} subscriber(s): {rate:.1f} MiB/s per "
                f"subscriber, {rate * subscribers:.1f} MiB/s delivered in total ({delivered >> 20} MiB)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--segments", type=int, default=1000, help="small segments for the latency run")
    parser.add_argument("--mib", type=int, default=64, help="1 MiB segments per throughput run")
    parser.add_argument("--in-process", action="store_true", help="run the relay on this process's loop")
    asyncio.run(main(parser.parse_args()))
