"""Peer: pytrickle 0.1.6's TrickleSubscriber reads a channel from seq 0 and saves every segment.

Usage: pytrickle_subscribe.py CHANNEL_URL OUT_DIR
Writes segment ``seq`` to ``OUT_DIR/<seq>.bin`` and ``READ <seq> <bytes>`` to stdout after each, then
``END`` once pytrickle reports the end of the stream.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytrickle_lite

pytrickle_lite.load()
from pytrickle.subscriber import TrickleSubscriber  # noqa: E402


async def main(url: str, out_dir: Path) -> None:
    subscriber = TrickleSubscriber(url, start_seq=0)
    await subscriber.start()
    try:
        while (segment := await subscriber.next()) is not None:
            parts = []
            while chunk := await segment.read():
                parts.append(chunk)
            data = b"".join(parts)
            (out_dir / f"{segment.seq()}.bin").write_bytes(data)
            sys.stdout.write(f"READ {segment.seq()} {len(data)}\n")
            sys.stdout.flush()
    finally:
        await subscriber.close()
    sys.stdout.write("END\n")
    sys.stdout.flush()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
