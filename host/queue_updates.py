"""Coalesce ComfyUI's queue ``status`` broadcasts while streams queue a prompt per frame.

Every prompt put into or finished by the queue calls ``server.queue_updated()``, which broadcasts to
every open browser; the frontend answers each broadcast with GET /queue and two GET /history. A live
stream queues one prompt per frame (15-30 a second), which froze the web UI: 427 broadcasts and 1281
requests in 6 s, the page unresponsive for 30 s. So at most one broadcast goes out per interval, and the
newest queue state is always sent (a trailing call): only the rate changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

# At most this often ComfyUI's `status` broadcast (queue size) goes out.
QUEUE_STATUS_INTERVAL_S = 0.25


def coalesce_queue_updates(
    server: Any,
    interval_s: float = QUEUE_STATUS_INTERVAL_S,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Replace ``server.queue_updated`` on the server *instance* (nothing else) with a throttled one.

    The replacement is called from the prompt worker thread and from the event loop; a deferred
    broadcast is scheduled on ``server.loop``.
    """
    original = server.queue_updated
    loop = server.loop
    lock = threading.Lock()
    pending = False
    last_sent = -float("inf")

    def flush() -> None:
        nonlocal pending, last_sent
        with lock:
            pending = False
            last_sent = clock()
        original()  # reads the queue now, so it reports the newest state

    def queue_updated() -> None:
        nonlocal pending, last_sent
        with lock:
            if pending:
                return  # the scheduled flush will report this change too
            wait = last_sent + interval_s - clock()
            if wait > 0:
                pending = True
            else:
                last_sent = clock()
        if wait > 0:
            loop.call_soon_threadsafe(loop.call_later, wait, flush)
        else:
            original()

    server.queue_updated = queue_updated
