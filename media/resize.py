"""Per-frame helpers of the decoder: target-size checks, the pts-based rate cap, and frame conversion."""

from __future__ import annotations

import threading
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .types import SWSCALE_THREADS

# A pts step this many times the nominal interval (or any step back) means the timeline restarted.
_RESET_AFTER_INTERVALS = 150


def validate_target_size(width: int | None, height: int | None) -> tuple[int, int] | None:
    """Return ``(width, height)`` or ``None`` for "keep the source size"; both or neither must be set."""
    if width is None and height is None:
        return None
    if width is None or height is None:
        raise ValueError("width and height must be given together")
    if width <= 0 or height <= 0 or width % 8 or height % 8:
        raise ValueError(f"width and height must be positive multiples of 8, got {width}x{height}")
    return int(width), int(height)


def cover_size(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[int, int]:
    """Smallest size with the source's aspect ratio that covers ``dst`` (both sides even, for swscale)."""
    scale = max(dst_w / src_w, dst_h / src_h)
    width = max(dst_w, round(src_w * scale))
    height = max(dst_h, round(src_h * scale))
    return width + (width & 1), height + (height & 1)


class FrameConverter:
    """Decoded frame -> uint8 RGB HxWx3 (C-contiguous), scaled to cover ``target`` and center-cropped.

    Colour conversion and scaling happen in one swscale pass through a reformatter kept across frames
    (``VideoFrame.to_ndarray(format=...)`` would build a new scaler context for every frame); the crop
    is a numpy slice copied once.
    """

    def __init__(self, target: tuple[int, int] | None) -> None:
        self._target = target
        self._reformatter = VideoReformatter()
        # one scaler context; a frame is converted on whichever thread first uses it
        self._lock = threading.Lock()

    def output_shape(self, frame: av.VideoFrame) -> tuple[int, int, int]:
        """The ``(height, width, 3)`` that ``convert(frame)`` returns, known without converting."""
        width, height = self._target or (frame.width, frame.height)
        return height, width, 3

    def defer(self, frame: av.VideoFrame) -> PendingRGB:
        """``frame``'s RGB, converted only when first asked for (see ``PendingRGB``)."""
        return PendingRGB(frame, self)

    def convert(self, frame: av.VideoFrame) -> np.ndarray:
        with self._lock:
            return self._convert(frame)

    def _convert(self, frame: av.VideoFrame) -> np.ndarray:
        if self._target is None or (frame.width, frame.height) == self._target:
            return self._rgb(frame, frame.width, frame.height)
        dst_w, dst_h = self._target
        scaled_w, scaled_h = cover_size(frame.width, frame.height, dst_w, dst_h)
        rgb = self._rgb(frame, scaled_w, scaled_h)
        if (scaled_w, scaled_h) == (dst_w, dst_h):
            return rgb
        top = (scaled_h - dst_h) // 2
        left = (scaled_w - dst_w) // 2
        return np.ascontiguousarray(rgb[top : top + dst_h, left : left + dst_w])

    def _rgb(self, frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
        scaled = self._reformatter.reformat(
            frame, width=width, height=height, format="rgb24", threads=SWSCALE_THREADS
        )
        return scaled.to_ndarray()


class PendingRGB:
    """A decoded frame's RGB pixels, converted on first use by whichever thread asks first.

    Why: under overload most decoded frames are dropped before any workflow sees them; holding the
    decoded YUV picture (half the bytes of RGB) and converting only the frames that are used saves the
    colour conversion and scaling of every dropped frame. ``shape`` is known without converting.
    """

    __slots__ = ("_frame", "_converter", "_rgb", "_lock", "shape")

    def __init__(self, frame: av.VideoFrame, converter: FrameConverter) -> None:
        self._frame: av.VideoFrame | None = frame
        self._converter = converter
        self._rgb: np.ndarray | None = None
        self._lock = threading.Lock()
        self.shape = converter.output_shape(frame)

    def rgb(self) -> np.ndarray:
        """The uint8 ``[H, W, 3]`` pixels (converted once; the decoded picture is released then)."""
        with self._lock:
            if self._rgb is None:
                assert self._frame is not None  # noqa: S101 - released only once converted
                self._rgb = self._converter.convert(self._frame)
                self._frame = None
            return self._rgb

    @property
    def converted(self) -> bool:
        return self._rgb is not None


class FrameRateCap:
    """Admit frames no faster than ``max_fps``, judged by pts (not wall clock), on an even grid.

    Frames are admitted when they reach the next slot of a 1/max_fps grid (with 10% tolerance for
    timestamp jitter), so 60 fps input becomes an even 30 fps, and 25 fps input passes untouched. A pts
    that jumps back or far ahead (source restart) resets the grid.
    """

    def __init__(self, max_fps: float | None) -> None:
        if max_fps is not None and max_fps < 0:
            raise ValueError("max_fps must be positive or None")
        self._interval_s = Fraction(1) / Fraction(max_fps).limit_denominator(1001) if max_fps else None
        self._next_due: Fraction | None = None
        self._last: Fraction | None = None

    def admit(self, pts: int, time_base: Fraction) -> bool:
        if self._interval_s is None:
            return True
        now = pts * time_base
        interval = self._interval_s
        if self._last is not None and (
            now < self._last or now - self._last > interval * _RESET_AFTER_INTERVALS
        ):
            self._next_due = None
        self._last = now
        if self._next_due is not None and now < self._next_due - interval / 10:
            return False
        if self._next_due is None:
            self._next_due = now + interval
        else:
            # Stay on the grid, but never let a long gap build up credit for a burst.
            self._next_due = max(self._next_due + interval, now + interval / 2)
        return True
