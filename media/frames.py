"""Conversions between what nodes and peers hand us and ComfyUI's IMAGE (``[B,H,W,C]`` float32 in 0..1).

torch is imported lazily, inside the functions that produce tensors, so the decoder and encoder (which work
on uint8 numpy arrays) run without it.

Layout rule (documented because shapes can be ambiguous):

- 2 dims: ``HW`` (one grey image).
- 3 dims: ``HWC`` if the last dim is a channel count (1, 3 or 4); otherwise ``CHW`` if the first dim is;
  otherwise an error. So an ambiguous ``3x3x3`` or ``4x8x3`` is read as ``HWC``: channels-last wins,
  because ComfyUI, our decoder and every comfystream path are channels-last.
- 4 dims: ``BHWC`` if the last dim is 1, 3 or 4; otherwise ``BCHW`` if dim 1 is; otherwise an error
  (``Bx3x3x3`` is ``BHWC``).

Values: integer input must be ``uint8`` (0..255). Float input (float16, bfloat16, float32, float64) is
taken as 0..1 and clamped to it. Channels: 1 is repeated to RGB, 4 drops alpha, 3 is kept. Tensors stay on
their device (CUDA in, CUDA out); numpy arrays become CPU tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

_CHANNEL_COUNTS = (1, 3, 4)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "permute")


def _dims_to_bhwc(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """Axis order that turns ``shape`` into BHWC (``None`` for HW), following the module's layout rule."""
    if len(shape) == 2:
        return None
    if len(shape) == 3:
        if shape[2] in _CHANNEL_COUNTS:
            return (0, 1, 2)
        if shape[0] in _CHANNEL_COUNTS:
            return (1, 2, 0)
    elif len(shape) == 4:
        if shape[3] in _CHANNEL_COUNTS:
            return (0, 1, 2, 3)
        if shape[1] in _CHANNEL_COUNTS:
            return (0, 2, 3, 1)
    raise ValueError(
        f"cannot read an image from shape {tuple(shape)}: expected HW, HWC, CHW, BHWC or BCHW "
        f"with 1, 3 or 4 channels"
    )


def _to_bhwc_layout(x: Any) -> Any:
    """Reorder axes (a view where possible) to B,H,W,C and make C exactly 3; works for numpy and torch."""
    shape = tuple(int(d) for d in x.shape)
    order = _dims_to_bhwc(shape)
    if order is None:  # HW grey
        x = x[None, :, :, None]
    else:
        if len(order) == 3:
            x = x.permute(*order) if _is_torch(x) else x.transpose(order)
            x = x[None]
        elif order != (0, 1, 2, 3):
            x = x.permute(*order) if _is_torch(x) else x.transpose(order)
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"empty image, shape {shape}")
    channels = int(x.shape[3])
    if channels == 4:
        x = x[..., :3]
    elif channels == 1:
        x = x.expand(-1, -1, -1, 3) if _is_torch(x) else np.broadcast_to(x, (*x.shape[:3], 3))
    return x


def _check_dtype_name(name: str) -> None:
    if name not in ("uint8", "float16", "bfloat16", "float32", "float64"):
        raise TypeError(f"unsupported image dtype {name}: use uint8 (0..255) or float (0..1)")


def to_comfy_image(x: Any) -> torch.Tensor:
    """Any supported image (see module doc) -> ComfyUI IMAGE: ``[B,H,W,3]`` float32 in 0..1, contiguous."""
    import torch

    if isinstance(x, np.ndarray):
        _check_dtype_name(x.dtype.name)
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not _is_torch(x):
        raise TypeError(f"expected a numpy array or torch tensor, got {type(x).__name__}")
    _check_dtype_name(str(x.dtype).removeprefix("torch."))
    x = _to_bhwc_layout(x)
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0).contiguous()
    return x.to(torch.float32).clamp(0.0, 1.0).contiguous()


def rgb_uint8_to_comfy_image(rgb: np.ndarray, device: str | torch.device | None = None) -> torch.Tensor:
    """The cheap path for decoded frames: uint8 HxWx3 -> ``[1,H,W,3]`` float32 0..1 in one conversion.

    With a CUDA ``device`` the uint8 array is copied first (a quarter of the bytes) and converted there.
    """
    return rgb_uint8_batch_to_comfy_image([rgb], device)


def rgb_uint8_batch_to_comfy_image(
    rgbs: Sequence[np.ndarray], device: str | torch.device | None = None
) -> torch.Tensor:
    """Like ``rgb_uint8_to_comfy_image`` for several frames of one size: ``[B,H,W,3]``, image i = rgbs[i]."""
    import torch

    for rgb in rgbs:
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape != rgbs[0].shape:
            raise ValueError(f"expected uint8 HxWx3 frames of one size, got {rgb.dtype} {rgb.shape}")
    if device is None or torch.device(device).type == "cpu":
        # numpy, single pass: torch's elementwise ops cost 8x the CPU here (1.6 vs 0.2 ms at 512x512 on
        # the 2-core reference machine, intra-op thread dispatch); same values as torch's div
        out = np.empty((len(rgbs), *rgbs[0].shape), dtype=np.float32)
        for i, rgb in enumerate(rgbs):
            np.divide(rgb, np.float32(255.0), out=out[i], dtype=np.float32)
        return torch.from_numpy(out)
    tensor = torch.from_numpy(np.stack(rgbs))
    if device is not None:
        tensor = tensor.to(device)
    return tensor.to(torch.float32).div_(255.0)


def comfy_image_to_frames(image: Any) -> list[np.ndarray]:
    """ComfyUI IMAGE (or any layout the module doc accepts) -> one uint8 HxWx3 C-contiguous frame per image.

    Floats are clamped to 0..1 and rounded to the nearest level; the conversion runs on the tensor's
    device, so only uint8 crosses to the CPU. numpy input needs no torch.
    """
    if isinstance(image, np.ndarray):
        _check_dtype_name(image.dtype.name)
        batch = _to_bhwc_layout(image)
        if batch.dtype != np.uint8:
            batch = (np.clip(batch.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return [np.ascontiguousarray(frame) for frame in batch]
    if not _is_torch(image):
        raise TypeError(f"expected a numpy array or torch tensor, got {type(image).__name__}")
    import torch

    _check_dtype_name(str(image.dtype).removeprefix("torch."))
    batch = _to_bhwc_layout(image.detach())
    if batch.dtype != torch.uint8 and batch.device.type == "cpu":
        # numpy on CPU: the torch chain below cost 12 ms of CPU per 512x512 frame on the 2-core reference
        # machine, numpy 0.4 ms, with identical bytes (bench/run.py, invert workflow)
        floats = batch.to(torch.float32).contiguous().numpy()
        scaled = np.multiply(floats, np.float32(255.0), dtype=np.float32)
        np.add(scaled, np.float32(0.5), out=scaled)
        np.clip(scaled, 0.0, 255.0, out=scaled)
        return list(scaled.astype(np.uint8))
    if batch.dtype != torch.uint8:
        batch = batch.to(torch.float32).clamp(0.0, 1.0).mul(255.0).add_(0.5).to(torch.uint8)
    array = batch.contiguous().cpu().numpy()
    return list(array)
