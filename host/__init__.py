"""Everything that touches ComfyUI itself: its queue, its validation, its server, the V3 extension.

Only ``comfy_api`` (in ``comfy_api.py``) and ``extension.py`` import ComfyUI at module level; the other
modules take the few ComfyUI objects they touch as arguments (or import them inside the one function that
builds them from the running host), so each is unit-tested against small fakes without ComfyUI.
This ``__init__`` imports nothing: ``nodes/`` imports ``host.comfy_api`` through it.
"""
