"""ComfyUI in a subprocess with this pack loaded the way users load it: the one launcher of the tests,
the demo and the benchmarks, plus small synchronous HTTP helpers for talking to it.

The pack is symlinked (never copied) into ``<base>/custom_nodes/comfy-trickle`` of an isolated
``--base-directory``, together with any extra node packs the caller names (the tests add
``tests/custom_nodes/*``). ComfyUI's own ``custom_nodes`` folder is then not loaded, and
models/input/output/temp/user all live under that base directory.

Locations come from ``scripts/env.sh`` (``COMFYUI_DIR``, ``COMFYUI_PYTHON``); the defaults here mirror
it so that a shell that did not source it still finds the set-up's ComfyUI.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .processes import free_port, start_process_group, stop_process_group

logger = logging.getLogger(__name__)

PACK_DIR = Path(__file__).resolve().parents[1]
PACK_DIR_NAME = "comfy-trickle"
READY_TIMEOUT_S = 180.0
START_ATTEMPTS = 3  # a port found free can be taken before ComfyUI binds it


# ComfyUI's logger (app/logger.py ColoredFormatter, 0.33 on) colours every line's level tag, also into a file.
ANSI_SGR = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi_colours(text: str) -> str:
    """``text`` without ANSI colour codes (``ESC[32m[INFO]ESC[0m msg`` -> ``[INFO] msg``)."""
    return ANSI_SGR.sub("", text)


class ComfyUIError(RuntimeError):
    """ComfyUI did not start, died, or did not answer as expected; the message carries the log tail."""


@dataclass(frozen=True)
class ComfyUIPaths:
    """Where ComfyUI's source tree and its python are, and the web frontend to serve instead of its own."""

    comfyui_dir: Path
    python: Path
    # The ``static`` folder of a comfyui-frontend-package; None serves ComfyUI's own frontend.
    frontend_root: Path | None = None

    @classmethod
    def from_env(cls) -> ComfyUIPaths:
        """Read ``COMFYUI_DIR`` / ``COMFYUI_PYTHON`` / ``COMFY_TRICKLE_FRONTEND`` with the same defaults as
        ``scripts/env.sh``."""
        cache = Path(os.environ.get("COMFY_TRICKLE_CACHE", Path.home() / ".cache" / "comfy-trickle"))
        version = os.environ.get("COMFY_TRICKLE_COMFYUI", "0.3.75")
        comfyui_dir = Path(os.environ.get("COMFYUI_DIR", cache / f"comfyui-{version}")).expanduser()
        python = Path(
            os.environ.get("COMFYUI_PYTHON", cache / f"venv-comfyui-{version}" / "bin" / "python")
        ).expanduser()
        frontend = os.environ.get("COMFY_TRICKLE_FRONTEND", "").strip()
        frontend_root = (
            cache / f"frontend-{frontend}" / "comfyui_frontend_package" / "static" if frontend else None
        )
        return cls(comfyui_dir=comfyui_dir, python=python, frontend_root=frontend_root)

    def frontend_args(self) -> tuple[str, ...]:
        """ComfyUI's command-line arguments that serve ``frontend_root`` (none for ComfyUI's own frontend)."""
        return () if self.frontend_root is None else ("--front-end-root", str(self.frontend_root))

    def check(self) -> None:
        """Raise a ComfyUIError saying how to fix a missing ComfyUI."""
        if not (self.comfyui_dir / "main.py").is_file():
            raise ComfyUIError(f"no ComfyUI at COMFYUI_DIR={self.comfyui_dir} (run scripts/setup)")
        if not os.access(self.python, os.X_OK):
            raise ComfyUIError(f"COMFYUI_PYTHON={self.python} is not executable (run scripts/setup)")
        if self.frontend_root is not None and not (self.frontend_root / "index.html").is_file():
            raise ComfyUIError(
                f"no web frontend at {self.frontend_root} (run COMFY_TRICKLE_FRONTEND=... scripts/setup)"
            )


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


def prepare_base_directory(base_directory: Path, node_packs: Iterable[Path] = ()) -> None:
    """Create ``custom_nodes`` with symlinks to the pack and to each of ``node_packs``.

    Reusable across runs (the demo keeps one base directory): a symlink already there is pointed anew,
    anything else of that name is left alone.
    """
    custom_nodes = base_directory / "custom_nodes"
    custom_nodes.mkdir(parents=True, exist_ok=True)
    for name, target in [(PACK_DIR_NAME, PACK_DIR), *((pack.name, pack) for pack in node_packs)]:
        link = custom_nodes / name
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            logger.warning("Leaving %s as it is (not a symlink)", link)
            continue
        link.symlink_to(target, target_is_directory=True)


@dataclass
class ComfyUIServer:
    """A running ComfyUI subprocess and small synchronous HTTP helpers."""

    port: int
    base_directory: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    args: tuple[str, ...] = ()
    startup_log: str = ""  # the log as it was when the server became ready (imports, start-up errors)
    client_id: str = field(default_factory=lambda: f"comfy-trickle-{uuid.uuid4().hex[:8]}")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        """Everything ComfyUI wrote to stdout/stderr so far, as plain text (colour codes removed)."""
        return strip_ansi_colours(self.log_path.read_text(encoding="utf-8", errors="replace"))

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

    def wait_until_ready(
        self, timeout: float = READY_TIMEOUT_S, interrupted: Callable[[], bool] | None = None
    ) -> float:
        """Block until GET /system_stats answers 200; returns the seconds it took.

        ``interrupted`` is asked between polls (the demo's Ctrl-C); when it answers True this gives up.
        """
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if interrupted is not None and interrupted():
                raise ComfyUIError("interrupted while ComfyUI was starting")
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
        """Terminate ComfyUI (its whole process group), then kill it if it lingers; idempotent."""
        stop_process_group(self.process)


def start_comfyui(
    base_directory: Path,
    log_path: Path,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    paths: ComfyUIPaths | None = None,
    ready_timeout: float = READY_TIMEOUT_S,
    *,
    port: int = 0,
    node_packs: Iterable[Path] = (),
    interrupted: Callable[[], bool] | None = None,
    die_with_parent: bool = True,
) -> ComfyUIServer:
    """Start ComfyUI on 127.0.0.1 with the pack loaded and wait until it answers.

    ``extra_args`` are appended to ComfyUI's command line, ``env`` is added to the inherited
    environment (e.g. ``{"COMFY_TRICKLE_TOKEN": "..."}``). ``port`` 0 picks a free one (and retries
    when another process took it first). ``log_path`` is started afresh. ``die_with_parent`` (see
    ``processes``) is for test and benchmark servers; the caller owns ``stop()``.
    """
    paths = paths or ComfyUIPaths.from_env()
    paths.check()
    prepare_base_directory(base_directory, node_packs)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_bytes(b"")
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}

    last_error: ComfyUIError | None = None
    for _attempt in range(START_ATTEMPTS if port == 0 else 1):
        chosen_port = port or free_port()
        args = (
            str(paths.python), "main.py", "--cpu",
            "--listen", "127.0.0.1", "--port", str(chosen_port),
            "--disable-api-nodes", "--database-url", "sqlite:///:memory:",
            "--base-directory", str(base_directory),
            *paths.frontend_args(),
            *extra_args,
        )  # fmt: skip
        with open(log_path, "ab") as log_file:
            log_file.write(f"$ {' '.join(args)}\n".encode())
            log_file.flush()
            process = start_process_group(
                args, log_file, cwd=paths.comfyui_dir, env=child_env, die_with_parent=die_with_parent
            )
        server = ComfyUIServer(chosen_port, base_directory, log_path, process, tuple(args))
        try:
            took = server.wait_until_ready(ready_timeout, interrupted)
        except ComfyUIError as err:
            server.stop()
            if "address already in use" in server.log_text().lower():
                last_error = err
                continue
            raise
        server.startup_log = server.log_text()
        logger.info("ComfyUI ready on %s after %.1f s", server.base_url, took)
        return server
    raise last_error if last_error is not None else ComfyUIError("ComfyUI did not start")
