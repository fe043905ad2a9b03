"""The "updating" mark drawn into placeholder frames while a stream's workflow warms up
(``streams.warmup``): unobtrusive, on the bottom rows only, so the picture (and the synthetic test
pattern's index strip at the top) stays readable."""

from __future__ import annotations

import numpy as np

MARK_ROWS_FRACTION = 32  # the mark is 1/32 of the height (at least 2 rows)


def draw_updating_mark(rgb: np.ndarray, phase: int) -> np.ndarray:
    """A copy of ``rgb`` (uint8 HxWx3) with a moving striped bar on its bottom rows (the "updating" mark)."""
    marked = np.array(rgb, dtype=np.uint8, copy=True)
    height, width = marked.shape[:2]
    rows = max(2, height // MARK_ROWS_FRACTION)
    stripe = max(4, width // 16)
    columns = (np.arange(width) + phase * 2) // stripe % 2 == 0
    bar = marked[height - rows :]
    bar[:, columns] = (255, 200, 0)  # amber stripes
    bar[:, ~columns] = (40, 40, 40)
    return marked
