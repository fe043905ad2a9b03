"""Per-segment H.264 encoder: RGB frames in, self-contained MPEG-TS segments out, trickled frame by frame.

Each output segment is its own MPEG-TS container (PAT/PMT first) whose first video frame is an IDR, which
is what a trickle subscriber joining at any segment needs (reference: trickle-protocol.md A11). One libx264
encoder lives across segments (rate control stays warm); a segment start forces an IDR. Bytes reach the
sink as soon as the muxer writes them (``flush_packets``), so a segment is published while it is produced.

Threading: :meth:`SegmentEncoder.encode`, :meth:`flush` and :meth:`close` must be called from one thread
(the stream engine's encode worker); the sink is called on that thread. :meth:`add_audio` is thread-safe
(the decode thread calls it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Protocol

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .audio_out import AacToOpus, AudioBuffer, EncodedAudio, add_aac_stream, add_opus_stream
from .types import MPEGTS_CLOCK_HZ, MPEGTS_TIME_BASE, SWSCALE_THREADS, AudioPacket, rescale

logger = logging.getLogger(__name__)

# Packets reach the sink right after each mux (FFmpeg already does so for non-seekable outputs like ours;
# explicit so it stays true), and the interleaver releases a packet as soon as a later one of any track
# arrives instead of waiting up to 10 s for every track to have one.
_MUX_OPTIONS = {"flush_packets": "1", "max_interleave_delta": "1"}
# Audio whose newest packet ends this far behind the video has stopped (TS muxers may send audio a few
# hundred ms late in bursts, so less would cut segments needlessly).
_AUDIO_STOPPED_TICKS = MPEGTS_CLOCK_HZ
# A pts this far behind the previous frame's starts a new timeline (source restart); less is adjusted.
_RESET_TICKS = MPEGTS_CLOCK_HZ // 2
# After a pts reset, queued audio this far ahead of the new video timeline belongs to the old one.
_STALE_AUDIO_TICKS = 2 * MPEGTS_CLOCK_HZ


class SegmentSink(Protocol):
    """Where encoded segments go (the publisher). Called on the encoder's thread, in this order."""

    def start_segment(self, index: int) -> None: ...

    def write(self, data: bytes) -> None: ...

    def end_segment(self) -> None: ...


@dataclass(frozen=True)
class EncoderSettings:
    """Encoder knobs. Defaults follow the Livepeer reference (superfast, zerolatency, no B-frames)
    except for 1 s segments (quicker joins, smaller loss per dropped segment)."""

    segment_seconds: float = 1.0
    preset: str = "superfast"
    crf: int | None = None  # None: x264's default (23)
    max_bitrate: int | None = None  # bits/s; caps noise-like content, which otherwise reaches >10 Mbit/s
    buffer_size: int | None = None  # bits; defaults to one second of max_bitrate
    fps: float = 30.0  # nominal rate for x264's rate control; pts still come from the frames
    # x264 threads: 0 lets x264 decide (about 1.5 per core for each encoder); a callable is asked each time
    # x264 opens (the stream engine shares the cores among the live streams' encoders)
    threads: int | Callable[[], int] = 0
    audio: bool = True  # mux audio handed to add_audio()
    opus_bitrate: int = 64000  # for AAC -> Opus
    # AAC input becomes Opus (the gateway accepts only Opus); False keeps AAC, only to produce test input.
    transcode_aac: bool = True
    max_audio_packets: int = 500  # about 10 s of Opus; older packets dropped when video stalls


@dataclass
class EncoderStats:
    frames: int = 0
    segments: int = 0
    bytes_out: int = 0
    keyframes: int = 0
    audio_packets_out: int = 0
    audio_dropped: int = 0
    audio_transcode_errors: int = 0
    audio_out_of_order: int = 0
    size_changes: int = 0
    pts_resets: int = 0
    pts_adjusted: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _SinkWriter:
    """File-like object PyAV writes the TS into; forwards each write to the sink."""

    def __init__(self, sink: SegmentSink, stats: EncoderStats) -> None:
        self._sink = sink
        self._stats = stats

    def write(self, data: bytes) -> int:
        self._sink.write(bytes(data))
        self._stats.bytes_out += len(data)
        return len(data)


def _add_video_mux_stream(
    container: av.container.OutputContainer, width: int, height: int
) -> av.stream.Stream:
    """A video track that takes packets encoded elsewhere (our long-lived x264)."""
    if hasattr(container, "add_mux_stream"):  # PyAV >= 17: a stream without an encoder
        return container.add_mux_stream("h264", width=width, height=height)
    # Older PyAV: declare it through an (unused, cheapest) encoder context, opened with the header.
    stream = container.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    return stream


class SegmentEncoder:
    """Encode RGB frames into a sequence of MPEG-TS segments handed to ``sink``."""

    def __init__(self, sink: SegmentSink, settings: EncoderSettings | None = None) -> None:
        self.settings = settings or EncoderSettings()
        if self.settings.segment_seconds <= 0:
            raise ValueError("segment_seconds must be positive")
        self._segment_length = Fraction(self.settings.segment_seconds).limit_denominator(1000)
        self._sink = sink
        self._stats = EncoderStats()
        self._audio = AudioBuffer(self.settings.max_audio_packets)
        self._video: av.CodecContext | None = None
        self._size: tuple[int, int] | None = None
        self._container: av.container.OutputContainer | None = None
        self._video_stream: av.stream.Stream | None = None
        self._audio_stream: av.stream.Stream | None = None
        self._transcoder: AacToOpus | None = None
        self._segment_start_pts: int | None = None
        self._last_video_pts: int | None = None
        self._last_audio_pts: int | None = None
        self._segment_index = -1
        self._reformatter = VideoReformatter()
        self._closed = False

    @property
    def stats(self) -> EncoderStats:
        self._stats.audio_dropped = self._audio.dropped
        return self._stats

    # ------------------------------------------------------------------ audio (any thread)

    def add_audio(self, packet: AudioPacket) -> None:
        """Queue an input audio packet for passthrough; it is muxed next to the video of the same pts."""
        if self.settings.audio and not self._closed:
            self._audio.put(packet)

    # ------------------------------------------------------------------ video (encode thread)

    def encode(self, rgb: np.ndarray, pts: int, time_base: Fraction) -> None:
        """Encode one uint8 RGB HxWx3 frame presented at ``pts`` (in ``time_base``)."""
        if self._closed:
            raise RuntimeError("encoder is closed")
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected uint8 HxWx3 RGB, got {rgb.dtype} {rgb.shape}")
        height, width = rgb.shape[0] & ~1, rgb.shape[1] & ~1  # 4:2:0 needs even sides: drop an odd edge
        if height == 0 or width == 0:
            raise ValueError(f"frame too small: {rgb.shape}")
        if (height, width) != rgb.shape[:2]:
            rgb = rgb[:height, :width]
        pts_90k = rescale(pts, time_base, MPEGTS_TIME_BASE)
        new_segment = self._container is None
        if self._size != (width, height):
            if self._size is not None:
                self._stats.size_changes += 1
                logger.info("output size changes to %dx%d: new segment and encoder", width, height)
            self._open_video_encoder(width, height)
            new_segment = True
        elif (
            self._last_video_pts is not None
            and self._last_video_pts - _RESET_TICKS < pts_90k <= self._last_video_pts
        ):
            # Same (or slightly earlier) pts, e.g. several images of one batch: the muxer needs strictly
            # increasing timestamps, so place the frame one tick after the previous one.
            self._stats.pts_adjusted += 1
            pts_90k = self._last_video_pts + 1
        elif self._last_video_pts is not None and pts_90k <= self._last_video_pts:
            self._stats.pts_resets += 1
            logger.info("output pts went back from %d to %d: new segment", self._last_video_pts, pts_90k)
            # A new timeline: audio may restart too, and audio queued from the old one is stale.
            self._last_audio_pts = None
            self._audio.discard_after(pts_90k + _STALE_AUDIO_TICKS)
            new_segment = True
        elif self._segment_start_pts is not None:
            elapsed = (pts_90k - self._segment_start_pts) * MPEGTS_TIME_BASE
            new_segment = new_segment or elapsed >= self._segment_length
        if not new_segment and self._audio_stream is not None and not self._audio_flowing(pts_90k):
            # The muxer holds each video packet until the audio track has one too: once audio has
            # stopped, a new segment without an audio track keeps video from lagging a frame behind.
            logger.info("input audio stopped: next segments carry video only")
            new_segment = True
        if new_segment:
            self._end_segment(pts_90k)
            self._start_segment(width, height, pts_90k)
        if self._video is None or self._container is None:
            raise RuntimeError("encoder state lost")  # unreachable: both were just opened
        # One reformatter for all frames: VideoFrame.reformat() would build a scaler context per frame.
        # from_numpy_buffer wraps the pixels where from_ndarray copies them (this whole call at 512x512:
        # 1.95 vs 1.98 ms of CPU a frame); the converted frame no longer refers to them.
        frame = self._reformatter.reformat(
            av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(rgb), format="rgb24"),
            format="yuv420p",
            threads=SWSCALE_THREADS,
        )
        frame.pts = pts_90k
        frame.time_base = MPEGTS_TIME_BASE
        if new_segment:
            frame.pict_type = av.video.frame.PictureType.I  # with forced-idr=1 x264 makes it an IDR
        self._mux_audio(self._audio.take_until(pts_90k + 1))
        for packet in self._video.encode(frame):
            self._mux_video(packet)
        self._last_video_pts = pts_90k
        self._stats.frames += 1
        # The interleaver holds a video packet until it has one of every track: a next audio packet
        # (usually already here, since video went through the workflow) releases it now.
        self._mux_audio(self._audio.take_until(None, limit=1))

    def flush(self) -> None:
        """Finish the current segment (all queued audio included); the next frame starts a new one."""
        if self._video is not None and self._container is not None:
            for packet in self._video.encode(None):
                self._mux_video(packet)
            self._video = None  # a drained x264 cannot take more frames; reopened on the next one
            self._size = None
        self._end_segment(None)

    def close(self) -> None:
        """Flush and release everything; idempotent."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._video = None

    def discard(self) -> None:
        """Release everything now without flushing (the stream stopped: nobody reads the rest); idempotent.

        Drops the x264 context, the swscale context and the open segment at once, so their worker threads
        end now rather than whenever the encoder object is collected (it often sits in a reference cycle).
        """
        self._closed = True
        container, self._container = self._container, None
        self._video = None
        self._size = None
        self._transcoder = None
        self._reformatter = VideoReformatter()  # a fresh one owns no swscale context (nor its threads)
        if container is not None:
            try:
                container.close()
            except av.FFmpegError:
                logger.debug("closing a discarded segment failed", exc_info=True)

    # ------------------------------------------------------------------ internals

    def _open_video_encoder(self, width: int, height: int) -> None:
        settings = self.settings
        video = av.CodecContext.create("libx264", "w")
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.time_base = MPEGTS_TIME_BASE
        video.framerate = Fraction(settings.fps).limit_denominator(1001)
        video.max_b_frames = 0
        # Keyframes come from segment starts; x264's own GOP limit is only a backstop.
        video.gop_size = max(1, round(settings.fps * settings.segment_seconds * 4))
        video.thread_count = settings.threads() if callable(settings.threads) else settings.threads
        options = {"preset": settings.preset, "tune": "zerolatency", "forced-idr": "1"}
        if settings.crf is not None:
            options["crf"] = str(settings.crf)
        if settings.max_bitrate:
            options["maxrate"] = str(settings.max_bitrate)
            options["bufsize"] = str(settings.buffer_size or settings.max_bitrate)
        video.options = options
        self._video = video
        self._size = (width, height)

    def _start_segment(self, width: int, height: int, pts_90k: int) -> None:
        self._segment_index += 1
        self._stats.segments += 1
        self._sink.start_segment(self._segment_index)
        container = av.open(
            _SinkWriter(self._sink, self._stats),
            mode="w",
            format="mpegts",
            container_options=dict(_MUX_OPTIONS),
        )
        self._video_stream = _add_video_mux_stream(container, width, height)
        self._audio_stream = None
        # Declare the audio track while audio flows, even if no packet happens to be queued right now.
        last_audio = self._audio.last
        if last_audio is not None and self._audio_flowing(pts_90k):
            self._audio_stream = self._add_audio_stream(container, last_audio)
        self._container = container
        self._segment_start_pts = pts_90k

    def _audio_flowing(self, video_pts: int) -> bool:
        """Whether audio still flows: some is queued, or the newest is less than a second behind the video."""
        last = self._audio.last
        if last is None:
            return False
        return self._audio.pending > 0 or last.pts + last.duration >= video_pts - _AUDIO_STOPPED_TICKS

    def _add_audio_stream(
        self, container: av.container.OutputContainer, head: AudioPacket
    ) -> av.stream.Stream:
        if head.codec == "aac" and not self.settings.transcode_aac:
            return add_aac_stream(container, head.sample_rate, head.channels)
        if head.codec == "aac":
            if self._transcoder is None:
                self._transcoder = AacToOpus(head.channels, self.settings.opus_bitrate)
            return add_opus_stream(container, self._transcoder.channels)
        return add_opus_stream(container, head.channels)

    def _end_segment(self, next_start_pts: int | None) -> None:
        if self._container is None:
            return
        try:
            if self._audio_stream is not None:
                self._mux_audio(self._audio.take_until(next_start_pts))
            self._container.close()
        except av.FFmpegError:
            logger.exception("closing output segment %d failed", self._segment_index)
        finally:
            self._container = None
            self._sink.end_segment()
        if self._audio_stream is None and next_start_pts is not None:
            # Audio that arrived while this segment had no audio track is too old for the next one.
            self._audio.discard_before(next_start_pts)

    def _mux_video(self, packet: av.Packet) -> None:
        if self._container is None or self._video_stream is None:
            return
        packet.stream = self._video_stream
        packet.time_base = MPEGTS_TIME_BASE
        if packet.is_keyframe:
            self._stats.keyframes += 1
        self._container.mux(packet)

    def _mux_audio(self, packets: list[AudioPacket]) -> None:
        if not packets:
            return
        if self._audio_stream is None or self._container is None:
            return  # no audio track in this segment; the next segment declares one
        ready: list[EncodedAudio] = []
        for packet in packets:
            if packet.codec == "opus" or (packet.codec == "aac" and not self.settings.transcode_aac):
                ready.append(EncodedAudio(packet.data, packet.pts, packet.duration))
            elif packet.codec == "aac" and self._transcoder is not None:
                ready.extend(self._transcoder.transcode(packet))
                self._stats.audio_transcode_errors = self._transcoder.errors
        for item in ready:
            if self._last_audio_pts is not None and item.pts <= self._last_audio_pts:
                self._stats.audio_out_of_order += 1  # the muxer needs increasing timestamps per track
                continue
            out = av.Packet(item.data)
            out.pts = out.dts = item.pts
            out.duration = item.duration
            out.time_base = MPEGTS_TIME_BASE
            out.stream = self._audio_stream
            self._container.mux(out)
            self._last_audio_pts = item.pts
            self._stats.audio_packets_out += 1
