"""When lost output segments stop being a blip and become a failed output.

The egress gives up one trickle segment on a transient error (the next segment starts with an IDR, so the
output recovers by itself). An output that refuses *every* segment (a wrong publish URL answering 405, a
server that lost the channel) would then look healthy forever: status ``running``, ``fps_out`` at the
input rate, no error. ``OutputHealth`` counts failures since the last segment that got through; once they
persist (``max_failed_segments`` in a row, or failures for ``max_failing_s`` without one success) the
stream must end in ``error`` with what the server said.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..trickle.errors import TrickleError, TrickleHTTPError, TrickleRetriesExhausted

MAX_FAILED_SEGMENTS = 3
MAX_FAILING_S = 3.0


class OutputHealth:
    """Failed segments in a row and since when; ``failed`` says when that has become a failed output."""

    def __init__(
        self,
        max_failed_segments: int = MAX_FAILED_SEGMENTS,
        max_failing_s: float = MAX_FAILING_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failed_segments = max_failed_segments
        self.max_failing_s = max_failing_s
        self._clock = clock
        self._failures = 0
        self._failing_since: float | None = None

    def succeeded(self) -> None:
        """A segment reached the server: the output is healthy again."""
        self._failures = 0
        self._failing_since = None

    def failed(self, error: TrickleError) -> str | None:
        """A segment was lost to ``error``; returns the stream's error message once failures persist."""
        now = self._clock()
        self._failures += 1
        if self._failing_since is None:
            self._failing_since = now
        persisting = now - self._failing_since
        if self._failures < self.max_failed_segments and persisting < self.max_failing_s:
            return None
        return (
            f"output failed: {self._failures} segments in a row were not accepted "
            f"over {persisting:.1f} s; last: {describe(error)}"
        )


def describe(error: BaseException) -> str:
    """What went wrong, led by the HTTP status when the server answered one."""
    if isinstance(error, TrickleRetriesExhausted) and error.last_error is not None:
        return describe(error.last_error)
    if isinstance(error, TrickleHTTPError):
        return f"HTTP {error.status}"  # never the URL (it may carry secrets) nor the body
    return str(error)
