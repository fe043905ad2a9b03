"""host.wiring and host.extension against a fake server: the routes a user calls exist once the pack
is loaded, the queue throttle and the shutdown hook are installed exactly once, and the extension does
its set-up whether the host calls on_load first (newer ComfyUI) or only get_node_list (0.3.75)."""

from __future__ import annotations

import importlib
import sys
import types
from abc import ABC, abstractmethod

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from comfy_trickle.host.validation import HostValidation
from comfy_trickle.host.wiring import HostWiring
from comfy_trickle.routes.settings import TrickleSettings
from host_fakes import FakeServer


async def _validate_prompt(*_args):
    return True, None, [], {}


def wiring_for(server: FakeServer, **env: str) -> HostWiring:
    settings = TrickleSettings.from_env({"COMFY_TRICKLE_DEV_RELAY": "0", **env})
    return HostWiring(server, settings, HostValidation({}, _validate_prompt))


def paths(server: FakeServer) -> list[str]:
    return [route.path for route in server.routes if isinstance(route, web.RouteDef)]


async def test_registered_routes_answer_on_the_servers_app():
    server = FakeServer()
    wiring_for(server).register_routes()
    app = web.Application()
    app.add_routes(server.routes)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/streams")
        assert response.status == 200
        assert await response.json() == {"streams": {}, "count": 0}
        assert (await client.post("/stream/start", json={})).status == 400


def test_routes_are_registered_once_and_the_dev_relay_only_when_enabled():
    server = FakeServer()
    wiring = wiring_for(server)
    wiring.register_routes()
    wiring.register_routes()
    assert "/stream/start" in paths(server)
    assert len(paths(server)) == len(set(paths(server)))  # aiohttp would refuse duplicates
    assert not any(path.startswith("/trickle/relay") for path in paths(server))

    with_relay = FakeServer()
    wiring_for(with_relay, COMFY_TRICKLE_DEV_RELAY="1").register_routes()
    assert any(path.startswith("/trickle/relay") for path in paths(with_relay))


async def test_load_throttles_the_queue_and_stops_streams_at_shutdown_once():
    server = FakeServer()
    wiring = wiring_for(server)
    hooks_before = len(server.app.on_shutdown)
    wiring.load()
    wiring.load()
    assert "queue_updated" in vars(server)  # the instance's method was replaced
    assert len(server.app.on_shutdown) == hooks_before + 1
    stopped = []

    async def stop_all():
        stopped.append(True)

    wiring.registry.stop_all = stop_all
    await server.app.on_shutdown[-1](server.app)
    assert stopped == [True]


@pytest.fixture
def extension_module(monkeypatch):
    """host.extension imported over a fake ``comfy_api.latest`` (unless the real one is loaded)."""

    class ComfyExtension(ABC):
        async def on_load(self) -> None:  # noqa: B027 - like comfy_api: a no-op only newer hosts call
            return None

        @abstractmethod
        async def get_node_list(self) -> list: ...

    latest = types.ModuleType("comfy_api.latest")
    latest.ComfyExtension = ComfyExtension
    latest.io = types.SimpleNamespace(ComfyNode=object)
    latest.ui = types.SimpleNamespace()
    before = set(sys.modules)
    if "comfy_api" not in sys.modules:
        monkeypatch.setitem(sys.modules, "comfy_api", types.ModuleType("comfy_api"))
        monkeypatch.setitem(sys.modules, "comfy_api.latest", latest)
    module = importlib.import_module("comfy_trickle.host.extension")
    yield module
    for name in set(sys.modules) - before:  # nothing built on the fake outlives the test
        if name.startswith("comfy_trickle."):
            del sys.modules[name]


async def test_the_extension_sets_up_on_load_or_else_in_get_node_list(extension_module):
    newer_host = FakeServer()
    extension = extension_module.TrickleExtension(wiring_for(newer_host))
    await extension.on_load()
    assert "queue_updated" in vars(newer_host)
    hooks = len(newer_host.app.on_shutdown)
    nodes = await extension.get_node_list()
    assert [node.__name__ for node in nodes] == ["TrickleInput", "TrickleOutput", "TrickleTextOutput"]
    assert len(newer_host.app.on_shutdown) == hooks  # not twice

    older_host = FakeServer()  # 0.3.75: never calls on_load
    await extension_module.TrickleExtension(wiring_for(older_host)).get_node_list()
    assert "queue_updated" in vars(older_host)


async def test_build_extension_registers_routes_before_the_host_asks_for_nodes(extension_module, monkeypatch):
    async def validate_prompt(*_args):
        return True, None, [], {}

    monkeypatch.setitem(sys.modules, "execution", types.SimpleNamespace(validate_prompt=validate_prompt))
    monkeypatch.setitem(sys.modules, "nodes", types.SimpleNamespace(NODE_CLASS_MAPPINGS={}))
    monkeypatch.setenv("COMFY_TRICKLE_DEV_RELAY", "0")
    server = FakeServer()
    extension = await extension_module.build_extension(server)
    assert "/stream/start" in paths(server)
    assert "queue_updated" not in vars(server)  # that waits for on_load / get_node_list
    assert extension.wiring.server is server
