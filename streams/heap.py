"""Hand a finished stream's memory back to the system at once.

A stopped session's objects form reference cycles (session <-> bridge callbacks, tasks, the ingest's
decoder and byte feed, the egress's encoder and outbox, the last frames and IMAGE tensors), so refcounting
never frees them; only a collection does. While streams run, ``gc_pause`` freezes the collector's objects
when the first stream starts - which also froze the previous stream's uncollected garbage, so back-to-back
start/stop cycles piled up about 1.5 MB each (bench/soak.py). ``release_memory`` collects right after a
stream finished (cheap while other streams keep the freeze: only what was allocated since is walked) and
then trims the heap (glibc only; elsewhere a no-op).

Each stream's threads (decode, encode, the codecs' and swscale's workers) allocate from their own glibc
malloc arenas. Freed blocks stay in those arenas, so without a trim the process's resident memory only
ever grows across start/stop cycles (the audit saw 1.3 -> 2.8 GB over 100 cycles). ``malloc_trim(0)``
returns the free pages of every arena. ``MALLOC_ARENA_MAX`` (see the README) caps the arenas themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import platform
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


def _load_malloc_trim() -> Callable[[int], int] | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def trim_heap() -> bool:
    """Return free heap pages to the system; True when something was released. Any thread."""
    if _MALLOC_TRIM is None:
        return False
    released = bool(_MALLOC_TRIM(0))
    logger.debug("malloc_trim: %s", "released memory" if released else "nothing to release")
    return released


def release_memory() -> None:
    """Collect the finished stream's cyclic garbage, then return free heap pages (see the module
    docstring). Run it off the event loop (it holds the GIL while collecting)."""
    unreachable = gc.collect()
    trim_heap()
    logger.debug("released memory after a stream: %d unreachable objects collected", unreachable)


class CoalescedRelease:
    """Runs :func:`release_memory` for finished streams one collection at a time.

    Several streams ending together (a bench case, an operator stopping all) each asked for a full
    collection; run concurrently they only queued on the GIL, holding every live stream's threads for
    seconds (py-spy, 8 streams ending: 8 parallel ``gc.collect`` calls). One collection frees the garbage
    of every stream that ended before it started, so requests during a run fold into one more run after it.
    """

    def __init__(self, release: Callable[[], None] = release_memory) -> None:
        self._release = release
        self._lock = threading.Lock()
        self._running = False
        self._again = False
        self.runs = 0

    def request(self) -> bool:
        """Ask for a release; True when the caller must run :meth:`run` (none is running yet)."""
        with self._lock:
            if self._running:
                self._again = True
                return False
            self._running = True
            return True

    def run(self) -> None:
        """Release, and again while requests came in meanwhile (call only after ``request()`` was True)."""
        while True:
            try:
                self._release()
            finally:
                with self._lock:
                    self.runs += 1
                    again, self._again = self._again, False
                    if not again:
                        self._running = False
            if not again:
                return
