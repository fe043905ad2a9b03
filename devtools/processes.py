"""Child processes of tests, the demo and the benchmarks: a free loopback port, and a server started in
its own process group so that stopping it stops everything it spawned.

Own process group: Ctrl-C in a terminal reaches only our process, which then stops its servers in order
instead of every child dying at once. ``die_with_parent`` additionally has the kernel send the child
SIGTERM when the thread that started it dies (also on SIGKILL or OOM), so no server outlives a killed
test session; the demo's ``--keep-comfyui`` needs it off.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

STOP_TIMEOUT_S = 10.0

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (whoever binds it next may still lose a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: only the prctl call, nothing that could deadlock.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_process_group(
    args: Sequence[str],
    log_file: BinaryIO,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``args`` (no shell) as the leader of a new process group, stdout and stderr to ``log_file``."""
    return subprocess.Popen(  # noqa: S603 - argv from our own callers, no shell
        list(args),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509 - only calls prctl
    )


def stop_process_group(process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the whole group of ``process``, SIGKILL it if the leader lingers; idempotent."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout_s)
