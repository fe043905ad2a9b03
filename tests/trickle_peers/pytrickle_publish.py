"""Peer: pytrickle 0.1.6's TricklePublisher writes segments of known bytes to a channel.

Usage: pytrickle_publish.py CHANNEL_URL COUNT SIZE
Publishes segment ``seq`` after reading one line from stdin (the test paces it, staying inside the
relay's 5-segment window), writing each in 10 KiB pieces. Writes ``PUBLISHED <seq>`` to stdout after each,
then waits for stdin to close before closing the publisher (pytrickle cancels in-flight POSTs on close).
"""

from __future__ import annotations

import asyncio
import logging
import sys

import pytrickle_lite
from payload import segment_payload

pytrickle_lite.load()
from pytrickle.publisher import TricklePublisher  # noqa: E402


async def main(url: str, count: int, size: int) -> None:
    loop = asyncio.get_running_loop()
    publisher = TricklePublisher(url, mime_type="video/MP2T")
    await publisher.start()
    for seq in range(count):
        await loop.run_in_executor(None, sys.stdin.readline)
        data = segment_payload(seq, size)
        async with await publisher.next() as segment:
            for start in range(0, len(data), 10 * 1024):
                await segment.write(data[start : start + 10 * 1024])
        sys.stdout.write(f"PUBLISHED {seq}\n")
        sys.stdout.flush()
    await loop.run_in_executor(None, sys.stdin.read)
    await publisher.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
