"""comfy-trickle: live video in ComfyUI over Livepeer's trickle protocol.

Kept tiny on purpose: importing this package must not import ComfyUI, so the core
(``trickle``, ``media``, ``streams``) stays testable on its own. Everything that touches ComfyUI lives
in ``host/`` and is imported lazily from ``comfy_entrypoint``, which ComfyUI calls while loading custom
nodes, before its routes are frozen.
"""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():  # noqa: ANN201 - the return type lives in comfy_api
    """V3 entry point: register our HTTP routes, then hand ComfyUI the extension (its node list)."""
    from .host.extension import build_extension

    return await build_extension()
