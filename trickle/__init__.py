"""Trickle protocol: async client (subscriber, publisher, JSON channels) and the dev relay server.

Pure aiohttp; never imports ComfyUI or torch. The public names are re-exported here::

    from comfy_trickle.trickle import TrickleSubscriber, TricklePublisher, ControlReader, EventsWriter
    from comfy_trickle.trickle import TrickleRelay, serve_relay
"""

from __future__ import annotations

from .channels import ControlReader, EventsWriter
from .errors import (
    TrickleChannelClosed,
    TrickleChannelNotFound,
    TrickleClosedError,
    TrickleError,
    TrickleHTTPError,
    TrickleRetriesExhausted,
    TrickleSegmentError,
    TrickleTLSError,
)
from .publisher import PublishedSegment, TricklePublisher
from .relay import RelayRequestError, TrickleRelay
from .relay_server import RunningRelay, serve_relay
from .subscriber import SubscribedSegment, TrickleSubscriber

__all__ = [
    "ControlReader",
    "EventsWriter",
    "PublishedSegment",
    "RelayRequestError",
    "RunningRelay",
    "SubscribedSegment",
    "TrickleChannelClosed",
    "TrickleChannelNotFound",
    "TrickleClosedError",
    "TrickleError",
    "TrickleHTTPError",
    "TrickleRelay",
    "TrickleRetriesExhausted",
    "TrickleSegmentError",
    "TrickleSubscriber",
    "TrickleTLSError",
    "TricklePublisher",
    "serve_relay",
]
