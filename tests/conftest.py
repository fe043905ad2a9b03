"""Shared fixtures.

``comfyui``: the session's real ComfyUI (see ``support.comfyui``), shared by all tests that use it.
``comfyui_factory``: ``comfyui_factory(extra_args=(), env=None) -> ComfyUIServer`` for tests needing a
differently configured server; one server per distinct configuration, shared within the session.
Tests using either fixture are marked ``comfyui`` automatically.
``api``: a ``StreamAPI`` on ``comfyui`` that stops every stream still active when the test ends.
``relay``: our dev trickle relay on a free 127.0.0.1 port, one per test. A module or test configures it
with ``pytest.mark.relay(channels=[(name, mime_type)], autocreate=..., **TrickleRelay options)``.

ComfyUI logs are written to a pytest temporary folder (or ``$COMFY_TRICKLE_TEST_LOG_DIR``, see
``support.comfyui``); they are deleted at the end of a session in which no test failed and that was not
interrupted, and kept (their path printed) otherwise. Every server started here is
stopped at session end, also after Ctrl-C (and the kernel stops it if pytest itself is killed).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence

import pytest
from comfy_trickle.devtools.comfyui_server import ComfyUIError, ComfyUIServer, start_comfyui
from comfy_trickle.devtools.stream_harness import StreamAPI
from comfy_trickle.trickle.relay_server import RunningRelay, serve_relay
from support.comfyui import comfyui_log_dir, node_packs_for_tests

# hypothesis keeps its caches in ./.hypothesis unless told otherwise: tests write only to temporary folders
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "comfy-trickle-hypothesis")
)

ComfyUIFactory = Callable[..., ComfyUIServer]

COMFYUI_FIXTURES = frozenset({"comfyui", "comfyui_factory"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "relay(channels=(), **options): channels and TrickleRelay options of the relay fixture"
    )


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    # Runs before session fixtures are torn down; an interrupted session keeps its ComfyUI logs.
    _interrupted_sessions.append(True)


_interrupted_sessions: list[bool] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if COMFYUI_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.comfyui)


@pytest.fixture(scope="session")
def comfyui_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComfyUIFactory]:
    servers: dict[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], ComfyUIServer] = {}
    failures: dict[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], str] = {}
    log_dir = comfyui_log_dir(tmp_path_factory)
    session_tag = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"

    def start(extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> ComfyUIServer:
        key = (tuple(extra_args), tuple(sorted((env or {}).items())))
        if key in failures:  # fail fast: one start-up attempt per configuration and session
            pytest.fail(failures[key], pytrace=False)
        server = servers.get(key)
        if server is not None and server.is_running():
            return server
        index = len(servers) + len(failures)
        log_path = log_dir / f"{session_tag}-{index}.log"
        try:
            server = start_comfyui(
                tmp_path_factory.mktemp(f"comfyui-base-{index}"), log_path, extra_args=extra_args, env=env,
                node_packs=node_packs_for_tests(),
            )
        except ComfyUIError as err:
            failures[key] = str(err)
            pytest.fail(failures[key], pytrace=False)
        servers[key] = server
        return server

    try:
        yield start
    finally:
        for server in servers.values():
            server.stop()
        if request.session.testsfailed == 0 and not _interrupted_sessions:
            for server in servers.values():
                server.log_path.unlink(missing_ok=True)
        else:
            for server in servers.values():
                sys.stderr.write(f"\nComfyUI log kept: {server.log_path}\n")


@pytest.fixture(scope="session")
def comfyui(comfyui_factory: ComfyUIFactory) -> ComfyUIServer:
    """The shared default ComfyUI with the pack (and tests/custom_nodes/*) loaded."""
    return comfyui_factory()


@pytest.fixture
async def api(comfyui: ComfyUIServer) -> AsyncIterator[StreamAPI]:
    """The stream API of the shared ComfyUI; streams a test leaves active are stopped (they hold slots)."""
    client = StreamAPI(comfyui.base_url)
    yield client
    await client.stop_active()
    await client.close()


@pytest.fixture
async def relay(request: pytest.FixtureRequest) -> AsyncIterator[RunningRelay]:
    """The dev relay for one test, configured by the nearest ``relay`` mark (test, then module)."""
    marker = request.node.get_closest_marker("relay")
    options: dict[str, object] = dict(marker.kwargs) if marker else {}
    # Waiting GETs notice a client that went away within 50 ms (the default 1 s only slows tests down).
    options.setdefault("disconnect_poll_s", 0.05)
    async with serve_relay(**options) as running:  # type: ignore[arg-type]
        yield running
