"""Where a running process's threads spend their time: py-spy samples, summed per thread.

    python bench/thread_profile.py --pid PID [--seconds 15] [--rate 100] [--py-spy PATH] [--top 8]

Prints, per thread, the share of the sampling time it was busy (100 % = one core), and the functions it
spent the most samples in (inclusive: a function and what it called), e.g. to see what the event loop does
at 12 streams. py-spy is no dependency of the pack or its tests: install it apart (a scratch venv). It
samples without stopping the process (``--nonblocking``), so figures are shares, not exact times.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# a raw (collapsed) stack line: frames separated by ";", then the sample count
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<function>.+?) \((?P<where>[^()]*)\)$")


@dataclass
class ThreadSamples:
    """Samples of one thread: in all, and per function seen anywhere on its stacks."""

    total: int = 0
    functions: collections.Counter[str] = field(default_factory=collections.Counter)


def parse_collapsed(text: str) -> dict[str, ThreadSamples]:
    """py-spy's ``--format raw --threads`` output, by thread (its first frame names the thread)."""
    threads: dict[str, ThreadSamples] = collections.defaultdict(ThreadSamples)
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        thread, *frames = match["stack"].split(";")
        count = int(match["count"])
        samples = threads[thread]
        samples.total += count
        for name in {_function(frame) for frame in frames}:  # once per sample, however deep it recurses
            samples.functions[name] += count
    return dict(threads)


def _function(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path, _, _line = match["where"].rpartition(":")
    return f"{match['function']} ({Path(path).name})"


def report(threads: dict[str, ThreadSamples], seconds: float, rate: int, top: int) -> str:
    """Threads by busy share, each with its ``top`` functions."""
    possible = seconds * rate
    lines = []
    for name, samples in sorted(threads.items(), key=lambda item: -item[1].total):
        lines.append(f"{100.0 * samples.total / possible:6.1f} %  {name}")
        # (functions on nearly every sample, such as the event loop's run_forever, are the thread's root)
        inner = [(f, c) for f, c in samples.functions.most_common() if c < 0.95 * samples.total]
        for function, count in inner[:top]:
            lines.append(f"          {100.0 * count / possible:6.1f} %  {function}")
    return "\n".join(lines)


def record(pid: int, seconds: float, rate: int, py_spy: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "profile.txt"
        subprocess.run(
            [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate),
             "--format", "raw", "--threads", "--nonblocking", "--output", str(out)],
            check=True, capture_output=True, timeout=seconds + 60,
        )  # fmt: skip
        return out.read_text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--py-spy", default="py-spy")
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    text = record(args.pid, args.seconds, args.rate, args.py_spy)
    print(report(parse_collapsed(text), args.seconds, args.rate, args.top))  # noqa: T201 - a CLI's output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
