"""Decoded frame -> ComfyUI IMAGE tensor, done on ComfyUI's worker thread inside ``TrickleInput``.

The decoder hands over uint8 RGB (4x smaller than float32, so the hand-off holds more frames for the same
memory); the float conversion happens only for frames that actually reach a prompt.
"""

from __future__ import annotations

import torch

from ..media.frames import rgb_uint8_to_comfy_image
from ..streams.handoff import InputFrame

_TENSOR_KEY = "image_tensor"


def frame_to_image(frame: InputFrame) -> torch.Tensor:
    """IMAGE ``[1, H, W, 3]`` float32 in 0..1; computed once per frame even with several input nodes."""
    cached = frame.extra.get(_TENSOR_KEY)
    if cached is not None:
        return cached
    image = rgb_uint8_to_comfy_image(frame.image)
    frame.extra[_TENSOR_KEY] = image
    return image
