"""Keep CPython's full garbage collections short while streams run.

ComfyUI's prompt worker calls ``gc.collect()`` after a prompt whenever 10 s have passed since the last one
(``main.py`` ``prompt_worker``). With one prompt per frame that is every 10 s while any stream runs, and a
full collection walks every tracked object of the process: about 545,000 in ComfyUI 0.3.75 with the pack,
630 ms on the 2-core reference machine, holding the GIL, so every stream stalls and its frames queue up
(bench/run.py at 30 fps 512x512: p95 glass-to-glass 330 ms and max 600 ms with the pause, 60 / 105 ms
without it).

``gc.freeze()`` moves every object that exists when the first stream starts into the permanent generation,
which collections skip; they then only walk what was allocated since. When the last stream ends,
``gc.unfreeze()`` hands those objects back to the collector, so anything that became cyclic garbage
meanwhile (e.g. a model unloaded during a stream) is still collected - later, not never.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Hashable

logger = logging.getLogger(__name__)


class CollectorFreeze:
    """Freezes the collector's current objects while at least one holder (a running stream) exists."""

    def __init__(self) -> None:
        self._holders: set[Hashable] = set()
        self._lock = threading.Lock()

    @property
    def frozen(self) -> bool:
        return bool(self._holders)

    def hold(self, holder: Hashable) -> None:
        """``holder`` started; the first one freezes (idempotent per holder)."""
        with self._lock:
            first = not self._holders
            self._holders.add(holder)
            if first:
                gc.freeze()
                logger.debug("gc: froze %d objects while streams run", gc.get_freeze_count())

    def release(self, holder: Hashable) -> None:
        """``holder`` ended; the last one unfreezes (unknown holders are ignored)."""
        with self._lock:
            if holder not in self._holders:
                return
            self._holders.discard(holder)
            if not self._holders:
                gc.unfreeze()


#: One per process: the collector is process-wide.
PROCESS_GC_FREEZE = CollectorFreeze()
