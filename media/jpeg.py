"""Still JPEG of one RGB frame (the web UI's live preview): pure encoding, no threads, no caching.

Who calls it decides when and where it runs; ``routes/preview.py`` runs it on its own one-thread pool
and shares each JPEG between viewers.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np

# MJPEG needs a time base although a still has no timing; any valid one does.
_STILL_TIME_BASE = Fraction(1, 25)


def encode_jpeg(rgb: Any, max_width: int) -> bytes:
    """Encode an RGB uint8 ``[H, W, 3]`` frame as a baseline JPEG no wider than ``max_width``.

    Uses FFmpeg's MJPEG encoder through PyAV (a pack dependency already), scaling down with the
    aspect ratio kept and even dimensions (4:2:0 chroma).
    """
    array = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an RGB frame [H, W, 3], got shape {array.shape}")
    height, width = array.shape[:2]
    frame = av.VideoFrame.from_ndarray(array, format="rgb24")
    out_width, out_height = width, height
    if width > max_width:
        out_width = max_width
        out_height = max(2, round(height * max_width / width))
    out_width -= out_width % 2
    out_height -= out_height % 2
    # yuvj420p is full-range 4:2:0, what JPEG decoders in browsers expect.
    frame = frame.reformat(width=max(2, out_width), height=max(2, out_height), format="yuvj420p")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width = frame.width
    codec.height = frame.height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = _STILL_TIME_BASE
    packets = codec.encode(frame) + codec.encode(None)
    return b"".join(bytes(packet) for packet in packets)
