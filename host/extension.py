"""The V3 ``ComfyExtension`` ComfyUI gets from ``comfy_entrypoint``, and what builds it.

Newer ComfyUI awaits ``extension.on_load()`` before ``get_node_list()``; 0.3.75 defines ``on_load`` but
never calls it. So ``on_load`` does the one-time set-up and ``get_node_list`` repeats the (idempotent)
call: whichever the host calls first does it, no version check needed. Routes are registered earlier,
in ``build_extension`` (called from ``comfy_entrypoint``), on every host before it freezes its routes.
"""

from __future__ import annotations

from typing import Any

from ..nodes.frames import frame_to_image
from ..nodes.live_io import TrickleInput, TrickleOutput
from ..nodes.text_output import TrickleTextOutput
from ..routes.settings import TrickleSettings
from .comfy_api import ComfyExtension, io
from .validation import host_validation
from .wiring import HostWiring


class TrickleExtension(ComfyExtension):
    """Hands ComfyUI our node classes and finishes the wiring when loaded."""

    def __init__(self, wiring: HostWiring) -> None:
        self._wiring = wiring

    @property
    def wiring(self) -> HostWiring:
        return self._wiring

    async def on_load(self) -> None:
        self._wiring.load()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        self._wiring.load()  # hosts that never call on_load
        return [TrickleInput, TrickleOutput, TrickleTextOutput]


async def build_extension(server: Any = None) -> TrickleExtension:
    """Build the registry on ``server`` (default ``PromptServer.instance``), register its routes."""
    if server is None:
        from server import PromptServer

        server = PromptServer.instance
    import nodes as comfy_nodes  # ComfyUI's node table (a live dict: filled while custom nodes load)

    wiring = HostWiring(
        server,
        TrickleSettings.from_env(),
        host_validation(server),
        prepare_frame=frame_to_image,
        node_classes=comfy_nodes.NODE_CLASS_MAPPINGS,
    )
    wiring.register_routes()
    return TrickleExtension(wiring)
