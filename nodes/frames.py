"""Decoded frame -> ComfyUI IMAGE tensor.

The decoder hands over uint8 RGB (4x smaller than float32, so the hand-off holds more frames for the same
memory); the float conversion happens only for frames that actually reach a prompt: the session's pump
runs it in a worker thread just before queueing the frame's prompt (so ComfyUI's one executor thread
does not pay for it), and ``TrickleInput`` finds the tensor ready (it converts itself otherwise).
"""

from __future__ import annotations

import torch

from ..media.frames import rgb_uint8_batch_to_comfy_image
from ..streams.handoff import IMAGE_TENSOR_KEY, InputFrame, frames_of


def frame_to_image(frame: InputFrame) -> torch.Tensor:
    """IMAGE ``[B, H, W, 3]`` float32 in 0..1, one image per frame of the prompt (``frame`` and its
    followers, B = 1 unless batched); computed once per prompt even with several input nodes."""
    cached = frame.extra.get(IMAGE_TENSOR_KEY)
    if cached is not None:
        return cached
    image = rgb_uint8_batch_to_comfy_image([batched.image for batched in frames_of(frame)])
    frame.extra[IMAGE_TENSOR_KEY] = image
    return image
