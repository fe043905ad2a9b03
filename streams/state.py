"""The states of a stream (``status["state"]``), in the order a stream goes through them.

``starting`` -> ``waiting`` (its input channel does not exist yet) -> ``running`` -> ``completed`` (the
input ended) | ``error`` | ``stopping`` -> ``stopped``.
"""

from __future__ import annotations

import enum


class StreamState(str, enum.Enum):
    STARTING = "starting"
    WAITING = "waiting"  # for the input channel to appear (streams.input_wait)
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    COMPLETED = "completed"
    ERROR = "error"

    @property
    def active(self) -> bool:
        return self in (StreamState.STARTING, StreamState.WAITING, StreamState.RUNNING, StreamState.STOPPING)
