"""Waiting for a stream's input channel to exist (issue 13, item 7).

A gateway (or the user) may start a stream before its publisher has created the input channel. Reading
then answers 404; instead of failing at once, the ingest asks again every ``POLL_S`` for up to
``params.input_wait_s`` seconds (default ``StreamLimits.default_input_wait_s``), and the stream shows the
``waiting`` state meanwhile. A channel that never appears ends the stream in ``error`` saying so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..trickle.errors import TrickleChannelNotFound, TrickleError
from ..trickle.subscriber import SubscribedSegment, TrickleSubscriber
from .config import seconds_param
from .limits import DEFAULT_LIMITS, StreamLimits

POLL_S = 0.25
INPUT_WAIT_PARAM = "input_wait_s"

# called with True when the input channel is missing (the stream waits), False once it delivers
WaitingCallback = Callable[[bool], None]


class InputNeverArrived(TrickleError):
    """The input channel did not appear within the stream's input wait."""


def input_wait_of(params: dict[str, Any], limits: StreamLimits = DEFAULT_LIMITS) -> float:
    """``params.input_wait_s`` checked against ``limits`` (400 naming the field), or the default."""
    seconds = seconds_param(params, INPUT_WAIT_PARAM, 0.0, limits.max_input_wait_s)
    return limits.default_input_wait_s if seconds is None else seconds


async def first_segment(
    subscriber: TrickleSubscriber, wait_s: float, on_waiting: WaitingCallback | None = None
) -> SubscribedSegment | None:
    """The channel's first segment, asking again while the channel does not exist yet (up to ``wait_s``).

    Calls ``on_waiting(True)`` at the first 404 and ``on_waiting(False)`` once a segment (or the end)
    came. Raises ``InputNeverArrived`` when the channel is still missing after ``wait_s``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    waiting = False
    while True:
        try:
            segment = await subscriber.next_segment()
        except TrickleChannelNotFound as err:
            if loop.time() >= deadline:
                raise InputNeverArrived(
                    f"no input: {subscriber.url} did not appear within {wait_s:g} s (no such channel)"
                ) from err
            if not waiting and on_waiting is not None:
                on_waiting(True)
            waiting = True
            await asyncio.sleep(min(POLL_S, max(0.0, deadline - loop.time())))
            continue
        if on_waiting is not None:
            on_waiting(False)
        return segment
