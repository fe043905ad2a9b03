"""The one module that imports ``comfy_api``; everything else imports these names from here.

Pinning the V3 API version in one place means a ComfyUI upgrade touches one line.
"""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io, ui

__all__ = ["ComfyExtension", "io", "ui"]
