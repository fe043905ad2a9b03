"""Processes around a benchmark case: the dev relay in its own process, and CPU/RSS sampling via /proc."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from comfy_trickle.devtools.processes import free_port, start_process_group, stop_process_group

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads) so far; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


@dataclass
class ProcessUsage:
    """CPU % (100 = one core busy) and CPU seconds over a window, and RSS peak/end in MiB."""

    cpu_percent: float
    cpu_seconds: float
    rss_peak_mib: float
    rss_end_mib: float


@dataclass
class UsageSampler:
    """Samples CPU time and RSS of named pids between ``start()`` and ``stop()`` (a thread, 0.25 s period)."""

    pids: dict[str, int]
    period_s: float = 0.25
    _cpu0: dict[str, float] = field(default_factory=dict)
    _rss_peak: dict[str, int] = field(default_factory=dict)
    _t0: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._cpu0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._rss_peak = {name: rss_bytes(pid) for name, pid in self.pids.items()}
        self._thread = threading.Thread(target=self._sample, name="bench-usage", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.period_s):
            for name, pid in self.pids.items():
                self._rss_peak[name] = max(self._rss_peak[name], rss_bytes(pid))

    def stop(self) -> dict[str, ProcessUsage]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        wall = max(1e-6, time.monotonic() - self._t0)
        usage = {}
        for name, pid in self.pids.items():
            end_rss = rss_bytes(pid)
            used = cpu_seconds(pid) - self._cpu0[name]
            usage[name] = ProcessUsage(
                cpu_percent=round(100.0 * used / wall, 1),
                cpu_seconds=round(used, 3),
                rss_peak_mib=round(max(self._rss_peak[name], end_rss) / 2**20, 1),
                rss_end_mib=round(end_rss / 2**20, 1),
            )
        return usage


class RelayProcess:
    """``python -m comfy_trickle.trickle serve --autocreate`` on a free loopback port, in its own process.

    A separate process keeps the relay's work out of both the pipeline under test and the measuring
    gateway, as with a real gateway/orchestrator; its CPU is reported on its own line.
    """

    def __init__(self, log_path: Path, python: str = sys.executable) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = start_process_group(
            [python, "-m", "comfy_trickle.trickle", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--autocreate", "--idle-timeout", "600", "--log-level", "WARNING"],
            self._log,
        )  # fmt: skip
        self._wait_ready()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"relay exited with {self.process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            time.sleep(0.05)
        raise RuntimeError("relay did not start listening")

    def stop(self) -> None:
        stop_process_group(self.process)
        self._log.close()
