"""MPEG-TS bytes in, H.264 access units out, without decoding: the browser's full-rate output view.

A thread demuxes the channel's bytes with PyAV as they arrive (``ByteFeed``, renewed at each segment) and
hands every video packet, still Annex B, to ``on_unit``; the browser decodes it with WebCodecs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import av

from .bytefeed import ByteFeed
from .pes_release import open_live_demuxer

logger = logging.getLogger(__name__)

_MAX_FAILED_OPENS = 50
_MAX_BUFFERED_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class AccessUnit:
    """One H.264 access unit (Annex B) with its time in microseconds and when it left the demuxer."""

    data: bytes
    timestamp_us: int
    keyframe: bool
    demuxed_at: float  # time.time(), so the browser on the same machine can measure how late it shows it


class AccessUnitDemuxer:
    """Feed TS bytes from any thread; ``on_unit`` is called on the demux thread for each video packet."""

    def __init__(self, on_unit: Callable[[AccessUnit], None]) -> None:
        self._on_unit = on_unit
        self._feed = ByteFeed(_MAX_BUFFERED_BYTES)
        self._thread = threading.Thread(target=self._run, name="trickle-au-demux", daemon=True)
        self._stopped = False
        self.units = 0

    def start(self) -> None:
        self._thread.start()

    def feed(self, chunk: bytes, *, segment_start: bool = False) -> None:
        self._feed.feed(chunk, boundary_before=segment_start)

    def end_of_input(self) -> None:
        """No more bytes: demux what is buffered, then the thread ends."""
        self._feed.finish()

    def stop(self) -> None:
        self._stopped = True
        self._feed.close()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        failed_opens = 0
        while not self._stopped and not self._feed.exhausted and failed_opens <= _MAX_FAILED_OPENS:
            self._feed.next_stream()
            try:
                container = open_live_demuxer(self._feed)
            except (av.FFmpegError, EOFError, ValueError):
                failed_opens += 1
                continue
            failed_opens = 0
            try:
                self._demux(container)
            except Exception as exc:  # noqa: BLE001 - a broken segment: go on with the next bytes
                logger.debug("access-unit demuxer error (%r); reopening", exc)
            finally:
                container.close()

    def _demux(self, container: av.container.InputContainer) -> None:
        video = next((s for s in container.streams if s.type == "video"), None)
        if video is None or video.codec_context.name != "h264":
            return
        time_base = video.time_base
        for packet in container.demux(video):
            if self._stopped:
                return
            if packet.size == 0:
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            timestamp_us = int(stamp * time_base * 1_000_000) if stamp is not None and time_base else 0
            self.units += 1
            data = bytes(packet)
            keyframe = bool(packet.is_keyframe) or has_idr_slice(data)
            self._on_unit(AccessUnit(data, timestamp_us, keyframe, time.time()))


def has_idr_slice(annexb: bytes) -> bool:
    """True when an Annex B access unit holds an IDR slice (NAL type 5). Without the H.264 parser the
    demuxer marks keyframes only where the muxer set the TS random-access flag, which not every muxer does."""
    start = annexb.find(b"\x00\x00\x01")
    while start != -1 and start + 3 < len(annexb):
        if annexb[start + 3] & 0x1F == 5:
            return True
        start = annexb.find(b"\x00\x00\x01", start + 3)
    return False
