"""Glue between the ComfyUI-free core and a running ComfyUI.

Called from ``comfy_entrypoint`` while ComfyUI loads custom nodes, which is before it freezes its
routes, so registering our HTTP handlers here still lands them on the server (and under ``/api``).
"""

from __future__ import annotations

import logging

from ._comfy import ComfyExtension, io
from .nodes.live_io import TrickleInput, TrickleOutput
from .routes.streams import register_stream_routes

logger = logging.getLogger(__name__)


class TrickleExtension(ComfyExtension):
    """Hands ComfyUI our node classes."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [TrickleInput, TrickleOutput]


async def build_extension() -> TrickleExtension:
    """Register routes on ``PromptServer.instance`` and return the extension."""
    from server import PromptServer

    register_stream_routes(PromptServer.instance.routes)
    logger.info("comfy-trickle: routes registered")
    return TrickleExtension()
