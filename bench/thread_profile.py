"""Where a running process's threads spend their time: py-spy samples, summed per thread.

    python bench/thread_profile.py --pid PID [--seconds 15] [--rate 100] [--py-spy PATH] [--top 8] [--gil]

Prints, per thread, the share of the sampling time it was busy (100 % = one core), and the functions it
spent the most samples in (inclusive: a function and what it called), e.g. to see what the event loop does
at 12 streams. py-spy is no dependency of the pack or its tests: install it apart (a scratch venv). It
samples without stopping the process (``--nonblocking``), so figures are shares, not exact times. With
``--gil`` only samples of the thread holding the GIL count: where one process's Python work is bounded by
the GIL (its threads together near 100 % of one core), that says which thread's Python code fills it.
With ``--cpu`` it measures instead each thread's CPU time from ``/proc/PID/task`` over the seconds (what
the kernel counts, native work included: codecs, swscale, torch), summed per thread name (py-spy names the
Python threads; the rest, such as x264's and swscale's workers, count as "native").
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import tempfile
import time
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


def record(pid: int, seconds: float, rate: int, py_spy: str, gil: bool = False) -> str:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "profile.txt"
        subprocess.run(
            [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate),
             "--format", "raw", "--threads", "--nonblocking", "--output", str(out),
             *(["--gil"] if gil else [])],
            check=True, capture_output=True, timeout=seconds + 60,
        )  # fmt: skip
        return out.read_text()


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of ``pid`` so far, by OS thread id."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return seconds


def python_thread_names(pid: int, py_spy: str) -> dict[int, str]:
    """OS thread id -> Python thread name, from ``py-spy dump --json``."""
    dump = subprocess.run(
        [py_spy, "dump", "--pid", str(pid), "--json", "--nonblocking"],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return {thread["os_thread_id"]: thread["thread_name"] for thread in json.loads(dump.stdout)}


def cpu_report(pid: int, seconds: float, py_spy: str) -> str:
    """Each thread name's CPU share over ``seconds`` (100 % = one core) and how many threads bear it."""
    before = thread_cpu_seconds(pid)
    started = time.monotonic()
    time.sleep(seconds)
    after = thread_cpu_seconds(pid)
    elapsed = time.monotonic() - started
    names = python_thread_names(pid, py_spy)
    shares: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    for tid, total in after.items():
        name = names.get(tid, "native")
        if name.startswith("trickle-encode-"):  # one name per kind: each stream's carries its stream id
            name = "trickle-encode"
        shares[name] += 100.0 * (total - before.get(tid, 0.0)) / elapsed
        counts[name] += 1
    lines = [f"{sum(shares.values()):6.1f} %  all {sum(counts.values())} threads"]
    lines += [f"{share:6.1f} %  {name} ({counts[name]})" for name, share in shares.most_common()
              if share >= 0.05]  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--py-spy", default="py-spy")
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--gil", action="store_true", help="count only samples holding the GIL")
    parser.add_argument("--cpu", action="store_true",
                        help="per-thread CPU time from /proc instead of samples")  # fmt: skip
    args = parser.parse_args()
    if args.cpu:
        print(cpu_report(args.pid, args.seconds, args.py_spy))  # noqa: T201 - a CLI's output
        return 0
    text = record(args.pid, args.seconds, args.rate, args.py_spy, args.gil)
    print(report(parse_collapsed(text), args.seconds, args.rate, args.top))  # noqa: T201 - a CLI's output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
