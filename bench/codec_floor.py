"""The codec floor: plain PyAV decode -> RGB -> encode of the benchmark's source, no network, no ComfyUI.

It does what any trickle video pipeline must do per frame and nothing else, with our encoder's x264
settings (``media.encoder.EncoderSettings`` defaults: superfast, zerolatency, no B-frames, x264 threads
auto) and our decoder's output format (uint8 RGB), so "ours / floor" is the price of everything else:
network, hand-off, ComfyUI, bookkeeping. Runs for a fixed number of seconds, looping over the source.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from comfy_trickle.media.types import MPEGTS_CLOCK_HZ, MPEGTS_TIME_BASE, SWSCALE_THREADS

from .source import EncodedSource

X264_OPTIONS = {"preset": "superfast", "tune": "zerolatency", "forced-idr": "1"}


@dataclass
class FloorResult:
    """Per-frame costs in milliseconds (wall and process CPU) and the implied frames per second."""

    frames: int
    seconds: float
    decode_ms: float
    to_rgb_ms: float
    from_rgb_ms: float
    encode_mux_ms: float
    total_ms: float
    cpu_ms_per_frame: float
    fps: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _open_encoder(
    width: int, height: int, fps: float, sink: io.BytesIO
) -> tuple[av.container.OutputContainer, av.VideoStream]:
    container = av.open(sink, mode="w", format="mpegts", options={"flush_packets": "1"})
    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.time_base = MPEGTS_TIME_BASE
    stream.codec_context.max_b_frames = 0
    stream.codec_context.thread_count = 0
    stream.options = dict(X264_OPTIONS)
    return container, stream


def run_floor(source: EncodedSource, seconds: float) -> FloorResult:
    """Decode, convert and re-encode ``source`` (looping) for ``seconds``; a new output per input segment."""
    costs = np.zeros(4)
    frames = 0
    # the cheapest PyAV calls we know (those of media.decoder and media.encoder): one scaler context per
    # direction, pixels wrapped rather than copied into the frame to encode
    to_rgb, from_rgb = VideoReformatter(), VideoReformatter()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    deadline = wall0 + seconds
    pts = 0
    step = round(MPEGTS_CLOCK_HZ / source.fps)
    while time.perf_counter() < deadline:
        for segment in source.segments:
            if time.perf_counter() >= deadline:
                break
            sink = io.BytesIO()
            out, stream = _open_encoder(source.width, source.height, source.fps, sink)
            inp = av.open(io.BytesIO(segment.data), format="mpegts")
            decoder = inp.streams.video[0].codec_context
            decoder.thread_count = 1
            packets = inp.demux(video=0)
            while True:
                t0 = time.perf_counter()
                decoded = None
                for packet in packets:
                    decoded = packet.decode()
                    if decoded or packet.size == 0:
                        break
                if not decoded:
                    break
                t1 = time.perf_counter()
                rgb = to_rgb.reformat(decoded[0], format="rgb24", threads=SWSCALE_THREADS).to_ndarray()
                t2 = time.perf_counter()
                wrapped = av.VideoFrame.from_numpy_buffer(rgb, format="rgb24")
                frame = from_rgb.reformat(wrapped, format="yuv420p", threads=SWSCALE_THREADS)
                frame.pts, frame.time_base = pts, MPEGTS_TIME_BASE
                pts += step
                t3 = time.perf_counter()
                for packet in stream.encode(frame):
                    out.mux(packet)
                t4 = time.perf_counter()
                costs += (t1 - t0, t2 - t1, t3 - t2, t4 - t3)
                frames += 1
            t0 = time.perf_counter()
            for packet in stream.encode(None):
                out.mux(packet)
            out.close()
            inp.close()
            costs[3] += time.perf_counter() - t0
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    per = costs * 1000.0 / max(1, frames)
    total = float(per.sum())
    return FloorResult(
        frames=frames,
        seconds=wall,
        decode_ms=float(per[0]),
        to_rgb_ms=float(per[1]),
        from_rgb_ms=float(per[2]),
        encode_mux_ms=float(per[3]),
        total_ms=total,
        cpu_ms_per_frame=cpu * 1000.0 / max(1, frames),
        fps=frames / wall if wall > 0 else 0.0,
    )
