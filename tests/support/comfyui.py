"""A real ComfyUI server in a subprocess, for tests that need the pack loaded the way users load it.

The pack is symlinked (never copied) into ``<base>/custom_nodes/comfy-trickle`` of an isolated
``--base-directory``, together with every test-only node pack under ``tests/custom_nodes/``.
ComfyUI's own ``custom_nodes`` folder is then not loaded, and models/input/output/temp/user all live
under the temporary base directory.

Locations come from ``scripts/env.sh`` (``COMFYUI_DIR``, ``COMFYUI_PYTHON``); the defaults here mirror
it so that ``pytest`` also works from a shell that did not source it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_NODE_PACKS_DIR = REPO_ROOT / "tests" / "custom_nodes"
ARTIFACTS_DIR = REPO_ROOT / "artifacts"
PACK_DIR_NAME = "comfy-trickle"

READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 10.0

_PR_SET_PDEATHSIG = 1


class ComfyUIError(RuntimeError):
    """ComfyUI did not start, died, or did not answer as expected; the message carries the log tail."""


@dataclass(frozen=True)
class ComfyUIPaths:
    """Where ComfyUI's source tree and its python are."""

    comfyui_dir: Path
    python: Path

    @classmethod
    def from_env(cls) -> ComfyUIPaths:
        """Read ``COMFYUI_DIR`` / ``COMFYUI_PYTHON`` with the same defaults as ``scripts/env.sh``."""
        cache = Path(os.environ.get("COMFY_TRICKLE_CACHE", Path.home() / ".cache" / "comfy-trickle"))
        comfyui_dir = Path(os.environ.get("COMFYUI_DIR", cache / "comfyui-0.3.75"))
        python = Path(os.environ.get("COMFYUI_PYTHON", cache / "venv-comfyui" / "bin" / "python"))
        return cls(comfyui_dir=comfyui_dir, python=python)

    def check(self) -> None:
        """Raise a ComfyUIError saying how to fix a missing ComfyUI."""
        if not (self.comfyui_dir / "main.py").is_file():
            raise ComfyUIError(f"no ComfyUI at COMFYUI_DIR={self.comfyui_dir} (run scripts/setup)")
        if not os.access(self.python, os.X_OK):
            raise ComfyUIError(f"COMFYUI_PYTHON={self.python} is not executable (run scripts/setup)")


@dataclass(frozen=True)
class HttpResult:
    """One HTTP answer: status, headers and raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip()

    def json(self) -> Any:
        """The body decoded as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child before exec: if pytest itself is killed (SIGKILL, OOM), the kernel sends
    # ComfyUI SIGTERM, so no server outlives the test session.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def prepare_base_directory(base_directory: Path) -> None:
    """Create ``custom_nodes`` with symlinks to the pack and to every test-only node pack."""
    custom_nodes = base_directory / "custom_nodes"
    custom_nodes.mkdir(parents=True, exist_ok=True)
    (custom_nodes / PACK_DIR_NAME).symlink_to(REPO_ROOT, target_is_directory=True)
    if TEST_NODE_PACKS_DIR.is_dir():
        for pack in sorted(TEST_NODE_PACKS_DIR.iterdir()):
            if pack.is_dir() and not pack.name.startswith((".", "__")):
                (custom_nodes / pack.name).symlink_to(pack, target_is_directory=True)


@dataclass
class ComfyUIServer:
    """A running ComfyUI subprocess and small synchronous HTTP helpers for tests."""

    port: int
    base_directory: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    args: tuple[str, ...] = ()
    startup_log: str = ""  # the log as it was when the server became ready (imports, start-up errors)
    client_id: str = field(default_factory=lambda: f"comfy-trickle-tests-{uuid.uuid4().hex[:8]}")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        """Everything ComfyUI wrote to stdout/stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def is_running(self) -> bool:
        return self.process.poll() is None

    # HTTP helpers -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> HttpResult:
        """Any HTTP request; HTTP error statuses are returned, not raised."""
        req = urllib.request.Request(  # noqa: S310 - always our loopback base_url
            self.base_url + path, data=body, method=method, headers=dict(headers or {})
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                return HttpResult(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as err:
            return HttpResult(err.code, dict(err.headers.items()), err.read())

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, Any]:
        """GET ``path``; returns (status, JSON body or None)."""
        result = self.request("GET", path, timeout=timeout)
        return result.status, result.json()

    def post_json(self, path: str, body: Any, timeout: float = 30.0) -> tuple[int, Any]:
        """POST ``body`` as JSON; returns (status, JSON body or None)."""
        result = self.request(
            "POST",
            path,
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            timeout=timeout,
        )
        return result.status, result.json()

    def queue_prompt(self, workflow: Mapping[str, Any], client_id: str | None = None) -> str:
        """POST an API-format workflow to /prompt and return its prompt_id.

        A client_id is always sent (ComfyUI omits cached outputs from history without one); raises
        ComfyUIError with the response body when ComfyUI rejects the prompt.
        """
        status, answer = self.post_json(
            "/prompt", {"prompt": dict(workflow), "client_id": client_id or self.client_id}
        )
        if status != 200 or not isinstance(answer, dict) or "prompt_id" not in answer:
            raise ComfyUIError(f"POST /prompt answered {status}: {answer!r}")
        return str(answer["prompt_id"])

    def wait_for_history(self, prompt_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll GET /history/{prompt_id} until the prompt has finished; return its history entry.

        The entry holds ``status`` (``status_str`` "success" or "error", ``messages``) and
        ``outputs``. Raises ComfyUIError on timeout or when ComfyUI died meanwhile.
        """
        deadline = time.monotonic() + timeout
        while True:
            status, history = self.get(f"/history/{prompt_id}")
            if status == 200 and isinstance(history, dict) and prompt_id in history:
                entry = history[prompt_id]
                if entry.get("status", {}).get("completed") is not None:
                    return entry
            if not self.is_running():
                raise ComfyUIError(f"ComfyUI exited while waiting for {prompt_id}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ComfyUIError(
                    f"prompt {prompt_id} not finished after {timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    # Lifecycle ----------------------------------------------------------------------------------

    def wait_until_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Block until GET /system_stats answers 200; returns the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                raise ComfyUIError(
                    f"ComfyUI exited with {self.process.returncode} before it was ready "
                    f"(log {self.log_path}):\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError):
                if self.request("GET", "/system_stats", timeout=2.0).status == 200:
                    return time.monotonic() - started
            time.sleep(0.1)
        raise ComfyUIError(
            f"ComfyUI not ready after {timeout:.0f} s (log {self.log_path}):\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Terminate ComfyUI (its whole process group), then kill it if it lingers."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)


def start_comfyui(
    base_directory: Path,
    log_path: Path,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    paths: ComfyUIPaths | None = None,
    ready_timeout: float = READY_TIMEOUT_S,
) -> ComfyUIServer:
    """Start ComfyUI on a free loopback port with the pack loaded and wait until it answers.

    ``extra_args`` are appended to ComfyUI's command line, ``env`` is added to the inherited
    environment (e.g. ``{"COMFY_TRICKLE_TOKEN": "..."}``). The caller owns ``stop()``.
    """
    paths = paths or ComfyUIPaths.from_env()
    paths.check()
    prepare_base_directory(base_directory)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}

    last_error: ComfyUIError | None = None
    for _attempt in range(3):  # a port found free can be taken before ComfyUI binds it
        port = free_port()
        args = (
            str(paths.python), "main.py", "--cpu",
            "--listen", "127.0.0.1", "--port", str(port),
            "--disable-api-nodes", "--database-url", "sqlite:///:memory:",
            "--base-directory", str(base_directory),
            *extra_args,
        )  # fmt: skip
        with open(log_path, "ab") as log_file:
            log_file.write(f"$ {' '.join(args)}\n".encode())
            log_file.flush()
            process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                args,
                cwd=paths.comfyui_dir,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: Ctrl-C goes to pytest, which stops us
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl
            )
        server = ComfyUIServer(port, base_directory, log_path, process, tuple(args))
        try:
            took = server.wait_until_ready(ready_timeout)
        except ComfyUIError as err:
            server.stop()
            if "address already in use" in server.log_text().lower():
                last_error = err
                continue
            raise
        server.startup_log = server.log_text()
        logger.info("ComfyUI ready on %s after %.1f s", server.base_url, took)
        return server
    assert last_error is not None
    raise last_error
