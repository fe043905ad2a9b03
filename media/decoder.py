"""Streaming MPEG-TS/H.264 decoder: bytes in (across trickle segment boundaries), frames out.

Threading: :meth:`StreamDecoder.feed` and :meth:`StreamDecoder.end_of_input` are called from any thread
(typically the asyncio loop) and only append to a bounded :class:`ByteFeed`. One decode thread owned by the
decoder demuxes and decodes, and calls ``on_frame`` / ``on_audio`` on that thread, so those callbacks must
be quick and thread-safe (e.g. ``loop.call_soon_threadsafe`` or a bounded ``queue.Queue``).

Latency: a frame is emitted as soon as its last byte is read. MPEG-TS video PES packets carry no length,
so libavformat alone would know a PES complete only when the next one starts (one frame interval later);
``CompletingReader`` (media/pes_release.py) writes the length in once the muxer's closing stuffing shows the
end. libavformat's H.264 parser, which would add another frame of delay, is switched off (see
``open_live_demuxer``). The input's end, or the next trickle segment's start, flushes the last frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from fractions import Fraction

import av

from .adts import parse_adts
from .bytefeed import ByteFeed
from .first_audio import FirstAudioGate
from .pes_release import open_live_demuxer
from .resize import FrameConverter, FrameRateCap, validate_target_size
from .types import MPEGTS_TIME_BASE, AudioPacket, DecodedFrame, DecoderStats

logger = logging.getLogger(__name__)

FrameCallback = Callable[[DecodedFrame], None]
AudioCallback = Callable[[AudioPacket], None]

# Without a video packet for this many input bytes and seconds, the demuxer is replaced by a fresh one.
_STARVED_BYTES = 256 * 1024
_STARVED_SECONDS = 2.0
# Demuxer opens in a row that failed without consuming a byte: something other than the input is wrong.
_MAX_STALLED_OPENS = 20


class StreamDecoder:
    """Decode one continuous MPEG-TS byte stream in a background thread.

    Args:
        on_frame: called on the decode thread with each emitted :class:`DecodedFrame`.
        on_audio: called on the decode thread with each audio packet of the first audio track.
        max_fps: drop frames arriving faster than this, judged by pts (``None`` or 0: keep all).
        width, height: if both given (multiples of 8), frames are scaled to cover and center-cropped to
            exactly this size; otherwise frames keep the source size.
        max_buffered_bytes: bound on undecoded input; older bytes are dropped beyond it.
        threads: libavcodec decode threads (1 keeps latency lowest; frame threading adds a frame per thread).
    """

    def __init__(
        self,
        on_frame: FrameCallback,
        on_audio: AudioCallback | None = None,
        *,
        max_fps: float | None = 30.0,
        width: int | None = None,
        height: int | None = None,
        max_buffered_bytes: int = 8 * 1024 * 1024,
        threads: int = 1,
        on_finished: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self._target = validate_target_size(width, height)
        self._on_frame = on_frame
        self._first_audio = FirstAudioGate(self._deliver)  # the output starts with its sound (first_audio.py)
        self._audio_expected = False
        self._on_audio = on_audio
        self._on_finished = on_finished
        self._threads = max(1, int(threads))
        self._feed = ByteFeed(max_buffered_bytes)
        self._feed.interrupt_check = self._video_starved
        self._video_mark = (0, time.monotonic())
        self._rate_cap = FrameRateCap(max_fps)
        self._converter = FrameConverter(self._target)
        self._stats = DecoderStats()
        self._stop_requested = False
        self._thread: threading.Thread | None = None
        self._last_size: tuple[int, int] | None = None
        self._last_pts: int | None = None  # last video packet timestamp (decode order)
        self._last_frame_pts: int | None = None
        self._next_index = 0
        self._audio_next_pts: int | None = None
        self._frame_step: int | None = None
        self._corrupt_frames = 0
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ control (any thread)

    def start(self) -> None:
        """Start the decode thread (once)."""
        if self._thread is not None:
            raise RuntimeError("decoder already started")
        self._thread = threading.Thread(target=self._run, name="trickle-decode", daemon=True)
        self._thread.start()

    def feed(self, chunk: bytes | bytearray | memoryview, *, segment_start: bool = False) -> None:
        """Hand over the next bytes of the stream; returns at once (bounded buffer, oldest dropped).

        Pass ``segment_start=True`` with the first chunk of each trickle segment (each starts with PAT/PMT
        and an IDR): the demuxer is then renewed there, which emits the previous segment's last frames at
        once instead of two frames later, and picks up a changed stream layout (e.g. an audio track that a
        restarted source added, which one long-lived demuxer would never report). The video decoder is kept.
        """
        self._feed.feed(chunk, boundary_before=segment_start)

    def set_target_size(self, width: int | None, height: int | None) -> None:
        """Scale frames converted from now on to ``width`` x ``height`` (a live update changed the stream's
        size; one reference swap, so any thread may call it)."""
        self._target = validate_target_size(width, height)
        self._converter = FrameConverter(self._target)

    def end_of_input(self) -> None:
        """No more bytes will come: decode what is buffered, flush, then the thread ends by itself."""
        self._feed.finish()

    def stop(self) -> None:
        """Stop quickly: discard buffered input and end the thread after the packet in hand."""
        self._stop_requested = True
        self._feed.close()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the decode thread to end; True if it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stats(self) -> DecoderStats:
        stats = self._stats
        stats.bytes_in = self._feed.bytes_in
        stats.bytes_dropped = self._feed.bytes_dropped
        stats.corrupt_skipped = max(0, stats.video_packets - stats.decoded) + self._corrupt_frames
        return stats

    # ------------------------------------------------------------------ decode thread

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._demux_until_exhausted()
        except BaseException as exc:  # noqa: BLE001 - reported through on_finished and .error
            logger.exception("decode thread failed")
            error = exc
            self.error = exc
        finally:
            # swscale keeps its own worker threads (PyAV's reformatter: one per CPU by default); this
            # object often lives on in a reference cycle, so free them now rather than at a later GC
            self._converter = FrameConverter(self._target)
            if self._on_finished is not None:
                try:
                    self._on_finished(error)
                except Exception:
                    logger.exception("on_finished callback failed")

    def _demux_until_exhausted(self) -> None:
        decoder: av.CodecContext | None = None
        stalled_opens = 0
        while not self._stop_requested:
            read_before = self._feed.bytes_read
            self._feed.next_stream()
            self._mark_video_progress()
            try:
                container = open_live_demuxer(self._feed)
            except (av.FFmpegError, EOFError, ValueError) as exc:
                if self._feed.exhausted:
                    break
                # Garbage where a stream should start: the bytes read are gone, try on what follows.
                self._stats.demux_restarts += 1
                logger.debug("cannot open MPEG-TS input (%s); retrying on following bytes", exc)
                # Only failures that consumed nothing could loop forever; live garbage just gets skipped.
                stalled_opens = stalled_opens + 1 if self._feed.bytes_read == read_before else 0
                if stalled_opens > _MAX_STALLED_OPENS:
                    raise RuntimeError("cannot open the MPEG-TS demuxer") from exc
                continue
            stalled_opens = 0
            self._mark_video_progress()
            try:
                decoder = self._demux(container, decoder)
            except Exception as exc:  # noqa: BLE001 - FFmpeg errors, and PyAV's IndexError on new streams
                self._stats.demux_restarts += 1
                logger.warning("demuxer error (%r); reopening on following bytes", exc)
            finally:
                container.close()
            if self._feed.exhausted:
                break
        if decoder is not None and not self._stop_requested:
            self._decode_packet(decoder, None, MPEGTS_TIME_BASE)
        if not self._stop_requested:
            self._first_audio.flush()

    def _demux(
        self, container: av.container.InputContainer, decoder: av.CodecContext | None
    ) -> av.CodecContext | None:
        video = next((s for s in container.streams if s.type == "video"), None)
        audio = next((s for s in container.streams if s.type == "audio"), None)
        self._audio_expected = audio is not None and self._on_audio is not None
        if video is None and audio is None:
            return decoder
        wanted = [s for s in (video, audio) if s is not None]
        for packet in container.demux(wanted):
            if self._stop_requested:
                break
            if packet.size == 0:
                continue  # PyAV's end-of-demux flush packets; we flush once, at the real end
            if video is not None and packet.stream_index == video.index:
                self._stats.video_packets += 1
                self._mark_video_progress()
                stamp = packet.dts if packet.dts is not None else packet.pts
                if stamp is not None:  # decode order (dts) is monotonic even with B-frames
                    self._track_timeline(int(stamp), video.time_base or MPEGTS_TIME_BASE)
                if decoder is None or decoder.name != video.codec_context.name:
                    decoder = self._make_decoder(video.codec_context.name)
                self._decode_packet(decoder, packet, video.time_base or MPEGTS_TIME_BASE)
            elif audio is not None and packet.stream_index == audio.index:
                self._stats.audio_packets += 1
                self._emit_audio(packet, audio)
        return decoder

    def _mark_video_progress(self) -> None:
        self._video_mark = (self._feed.bytes_read, time.monotonic())

    def _video_starved(self) -> bool:
        """Bytes keep coming but no video packet for a while: the stream layout changed under the demuxer
        (PyAV ignores streams a new PMT adds), so the current demuxer must be replaced."""
        bytes_at, time_at = self._video_mark
        return (
            self._feed.bytes_read - bytes_at > _STARVED_BYTES
            and time.monotonic() - time_at > _STARVED_SECONDS
        )

    def _make_decoder(self, codec_name: str) -> av.CodecContext:
        decoder = av.CodecContext.create(codec_name, "r")
        decoder.thread_count = self._threads
        if self._threads > 1:
            decoder.thread_type = "SLICE"  # frame threading would delay output by a frame per thread
        return decoder

    def _decode_packet(self, decoder: av.CodecContext, packet: av.Packet | None, time_base: Fraction) -> None:
        started = time.perf_counter()
        try:
            frames = decoder.decode(packet)
        except av.FFmpegError as exc:
            logger.debug("skipping undecodable video packet: %s", exc)
            return
        # the codec's time, shared by the frames one call returned (usually one; several when flushing)
        codec_s = (time.perf_counter() - started) / max(1, len(frames))
        for frame in frames:
            self._stats.decoded += 1
            if frame.is_corrupt:
                self._corrupt_frames += 1
                continue
            self._handle_frame(frame, time_base, codec_s)

    def _handle_frame(self, frame: av.VideoFrame, time_base: Fraction, codec_s: float = 0.0) -> None:
        pts = frame.pts
        if pts is None:
            # Without a timestamp, place the frame one nominal interval after the previous one.
            pts = (self._last_frame_pts or 0) + (self._frame_step or int(Fraction(1, 30) / time_base))
        self._last_frame_pts = int(pts)
        size = (frame.width, frame.height)
        if self._last_size is not None and size != self._last_size:
            self._stats.resolution_changes += 1
            logger.info("input resolution changed from %dx%d to %dx%d", *self._last_size, *size)
        self._last_size = size
        if not self._rate_cap.admit(pts, time_base):
            self._stats.dropped_by_rate += 1
            return
        decoded = DecodedFrame(
            picture=self._converter.defer(frame), pts=int(pts), time_base=time_base, index=self._next_index,
            decode_s=codec_s,
        )
        self._next_index += 1
        self._stats.emitted += 1
        self._first_audio.frame(decoded, self._audio_expected)

    def _deliver(self, decoded: DecodedFrame) -> None:
        try:
            self._on_frame(decoded)
        except Exception:
            self._stats.callback_errors += 1
            logger.exception("on_frame callback failed")

    def _track_timeline(self, pts: int, time_base: Fraction) -> None:
        """Count timestamps going back (source restart) and gaps of whole frames (lost before demuxing)."""
        last = self._last_pts
        self._last_pts = pts
        if last is None:
            return
        step = pts - last
        if step <= 0:
            self._stats.pts_resets += 1
            logger.info("video timestamps went back from %d to %d (source restart?)", last, pts)
            return
        nominal = self._frame_step
        if nominal is not None and step > nominal * 3 // 2 and step * time_base < 10:
            self._stats.frames_missing += round(step / nominal) - 1
            return  # a gap says nothing about the frame rate
        self._frame_step = step if nominal is None else min(step, nominal * 2)

    def _emit_audio(self, packet: av.Packet, stream: av.audio.stream.AudioStream) -> None:
        if self._on_audio is None:
            return
        ctx = stream.codec_context
        time_base = stream.time_base or MPEGTS_TIME_BASE
        data = bytes(packet)
        sample_rate = int(ctx.sample_rate or 0)
        channels = int(ctx.layout.nb_channels)
        duration = int(packet.duration or 0)
        adts = parse_adts(data) if ctx.name == "aac" else None
        if adts is not None:
            sample_rate, channels = adts.sample_rate, adts.channels or channels
            duration = duration or round(Fraction(adts.samples, adts.sample_rate) / time_base)
        pts = packet.pts
        if pts is None:
            # The AAC parser splits a multi-frame PES and only the first frame keeps the PES timestamp.
            if self._audio_next_pts is None:
                return
            pts = self._audio_next_pts
        self._audio_next_pts = int(pts) + duration if duration else None
        audio = AudioPacket(
            data=data,
            pts=int(pts),
            time_base=time_base,
            codec=ctx.name,
            sample_rate=sample_rate,
            channels=channels,
            duration=duration,
        )
        try:
            self._on_audio(audio)
        except Exception:
            self._stats.callback_errors += 1
            logger.exception("on_audio callback failed")
        self._first_audio.audio_arrived()


def decode_bytes(
    data: bytes | list[bytes],
    *,
    max_fps: float | None = None,
    width: int | None = None,
    height: int | None = None,
    timeout: float = 60.0,
    segment_starts: bool = False,
) -> tuple[list[DecodedFrame], list[AudioPacket], DecoderStats]:
    """Decode a whole byte string (or a list of chunks) synchronously; for tests, tools and the demo.

    With ``segment_starts`` each chunk of the list is fed as one trickle segment
    (``feed(chunk, segment_start=True)``). Unlike the live default, no rate cap is applied unless
    ``max_fps`` is given.
    """
    chunks = [bytes(data)] if isinstance(data, (bytes, bytearray)) else list(data)
    frames: list[DecodedFrame] = []
    audio: list[AudioPacket] = []
    decoder = StreamDecoder(
        frames.append,
        audio.append,
        max_fps=max_fps,
        width=width,
        height=height,
        max_buffered_bytes=sum(len(c) for c in chunks) + 1,  # everything is fed at once: keep it all
    )
    decoder.start()
    try:
        for chunk in chunks:
            decoder.feed(chunk, segment_start=segment_starts)
        decoder.end_of_input()
        if not decoder.join(timeout):
            raise TimeoutError(f"decoding did not finish within {timeout} s")
    finally:
        decoder.stop()
        decoder.join(5.0)
    if decoder.error is not None:
        raise decoder.error
    return frames, audio, decoder.stats
