"""Command line: ``python -m comfy_trickle.trickle serve --host 127.0.0.1 --port 8935 [--autocreate]``.

Runs the dev relay standalone, so development without a Livepeer gateway uses a real trickle server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence

from .protocol import DEFAULT_MIME_TYPE
from .relay_server import run_forever


def _channel_spec(value: str) -> tuple[str, str]:
    name, _, mime_type = value.partition(":")
    if not name or "/" in name:
        raise argparse.ArgumentTypeError(f"bad channel name {value!r}")
    return name, mime_type or DEFAULT_MIME_TYPE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m comfy_trickle.trickle", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the dev trickle relay")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port (default: a free one, logged at start)")
    serve.add_argument("--prefix", default="/", help="base path of the channels (default /)")
    serve.add_argument("--autocreate", action="store_true", help="create unknown channels on first POST")
    serve.add_argument(
        "--create",
        action="append",
        default=[],
        type=_channel_spec,
        metavar="NAME[:MIME]",
        help="create a channel at start-up (repeatable)",
    )
    serve.add_argument(
        "--idle-timeout", type=float, default=300.0, help="seconds before an idle channel closes"
    )
    serve.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_forever(
                args.host,
                args.port,
                prefix=args.prefix,
                channels=args.create,
                autocreate=args.autocreate,
                idle_timeout_s=args.idle_timeout,
                sweep_interval_s=min(60.0, max(args.idle_timeout / 5, 0.01)),
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
