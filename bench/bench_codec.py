"""Per-frame cost of our media decoder and encoder against the codec floor. Prints figures; asserts nothing.

    python bench/bench_codec.py [--frames 150] [--repeats 5] [--sizes 512x512,1280x720]
                                [--presets superfast,ultrafast] [--content smooth|noise]

Floor = a plain PyAV loop on the same frames in the same run:
- decode floor: ``av.open`` on the whole TS in memory, ``demux`` -> ``decode`` -> ``to_ndarray("rgb24")``
  (our decoder's output is uint8 RGB too), same decoder thread count as ours; a second, stricter floor
  keeps one ``VideoReformatter`` across frames as our decoder does (``to_ndarray(format=...)`` builds a
  new scaler context per frame);
- encode floor: one MPEG-TS container, ``VideoFrame.from_ndarray(rgb24)`` -> libx264 with the same options
  (preset, zerolatency, no B-frames, forced-idr) -> ``mux``; no segments, no sink.

Ours = ``StreamDecoder`` fed the same bytes in 64 KiB chunks (thread, byte feed, rate cap off, RGB out),
and ``SegmentEncoder`` producing 1 s self-contained segments into a sink that keeps the bytes.

Each figure is the median of ``--repeats`` runs, floor and ours interleaved; wall ms/frame and process
CPU ms/frame (all threads) are both shown, since other work on the machine disturbs wall time.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import statistics
import time
from collections.abc import Callable

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from comfy_trickle.media.decoder import StreamDecoder
from comfy_trickle.media.encoder import EncoderSettings, SegmentEncoder
from comfy_trickle.media.synthetic import make_test_frame
from comfy_trickle.media.types import MPEGTS_CLOCK_HZ, MPEGTS_TIME_BASE, DecodedFrame

FPS = 30
TICKS = MPEGTS_CLOCK_HZ // FPS
CHUNK = 64 * 1024


def make_frames(count: int, width: int, height: int, content: str) -> list[np.ndarray]:
    if content == "noise":
        rng = np.random.default_rng(7)
        return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]
    return [make_test_frame(i, width, height) for i in range(count)]


class KeepSink:
    def __init__(self) -> None:
        self.size = 0
        self.segments = 0

    def start_segment(self, index: int) -> None:
        self.segments += 1

    def write(self, data: bytes) -> None:
        self.size += len(data)

    def end_segment(self) -> None:
        pass


def x264_options(preset: str) -> dict[str, str]:
    return {"preset": preset, "tune": "zerolatency", "forced-idr": "1"}


def encode_floor(frames: list[np.ndarray], preset: str) -> int:
    out = io.BytesIO()
    container = av.open(out, "w", format="mpegts")
    stream = container.add_stream("libx264", rate=FPS, options=x264_options(preset))
    stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
    stream.pix_fmt = "yuv420p"
    stream.time_base = MPEGTS_TIME_BASE
    stream.codec_context.max_b_frames = 0
    stream.codec_context.gop_size = FPS  # our segments force an IDR every second: same keyframe cost
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = i * TICKS
        frame.time_base = MPEGTS_TIME_BASE
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    return out.tell()


def encode_ours(frames: list[np.ndarray], preset: str) -> int:
    sink = KeepSink()
    encoder = SegmentEncoder(sink, EncoderSettings(preset=preset, audio=False))
    for i, rgb in enumerate(frames):
        encoder.encode(rgb, i * TICKS, MPEGTS_TIME_BASE)
    encoder.close()
    return sink.size


def decode_floor(data: bytes) -> int:
    count = 0
    container = av.open(io.BytesIO(data), format="mpegts")
    stream = container.streams.video[0]
    stream.codec_context.thread_count = 1
    for packet in container.demux(stream):
        for frame in packet.decode():
            frame.to_ndarray(format="rgb24")
            count += 1
    container.close()
    return count


def decode_floor_cached_scaler(data: bytes) -> int:
    """A stricter floor: the same loop with one reformatter kept across frames, as our decoder does."""
    count = 0
    reformatter = VideoReformatter()
    container = av.open(io.BytesIO(data), format="mpegts")
    stream = container.streams.video[0]
    stream.codec_context.thread_count = 1
    for packet in container.demux(stream):
        for frame in packet.decode():
            reformatter.reformat(frame, format="rgb24").to_ndarray()
            count += 1
    container.close()
    return count


def decode_ours(data: bytes) -> int:
    count = 0

    def on_frame(frame: DecodedFrame) -> None:
        nonlocal count
        frame.rgb  # noqa: B018 - the conversion a used frame costs (deferred until asked for)
        count += 1

    decoder = StreamDecoder(on_frame, max_fps=None, max_buffered_bytes=len(data) + 1)
    decoder.start()
    for offset in range(0, len(data), CHUNK):
        decoder.feed(data[offset : offset + CHUNK])
    decoder.end_of_input()
    decoder.join()
    return count


def timed(run: Callable[[], int]) -> tuple[float, float, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


class Figures:
    """Per-frame costs (ms) of floor and ours over interleaved runs."""

    def __init__(self, runs: dict[str, list[tuple[float, float]]], frames: int) -> None:
        self.runs = runs
        self.frames = frames

    def ms(self, name: str, index: int, pick: Callable[[list[float]], float]) -> float:
        return pick([r[index] for r in self.runs[name]]) * 1000.0 / self.frames


def compare(
    floor: Callable[[], int], ours: Callable[[], int], frames: int, repeats: int
) -> tuple[Figures, int]:
    """Time ``repeats`` interleaved runs of each (after one warm-up each); also return ours' last result."""
    floor()
    ours()
    runs: dict[str, list[tuple[float, float]]] = {"floor": [], "ours": []}
    result = 0
    for _ in range(repeats):
        for name, run in (("floor", floor), ("ours", ours)):
            wall, cpu, result = timed(run)
            runs[name].append((wall, cpu))
    return Figures(runs, frames), result


HEADER = (
    "| step | floor CPU | ours CPU | ratio | ratio of best runs | floor wall | ours wall | ratio | note |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def row(label: str, figures: Figures, note: str = "") -> str:
    """CPU = process CPU time (all threads), median of runs; wall likewise; ms per frame."""
    med, best = statistics.median, min
    floor_cpu, ours_cpu = figures.ms("floor", 1, med), figures.ms("ours", 1, med)
    best_ratio = figures.ms("ours", 1, best) / figures.ms("floor", 1, best)
    floor_wall, ours_wall = figures.ms("floor", 0, med), figures.ms("ours", 0, med)
    return (
        f"| {label} | {floor_cpu:.2f} | {ours_cpu:.2f} | {ours_cpu / floor_cpu:.2f}x | {best_ratio:.2f}x "
        f"| {floor_wall:.2f} | {ours_wall:.2f} | {ours_wall / floor_wall:.2f}x | {note} |"
    )


def encoded_stream(frames: list[np.ndarray]) -> bytes:
    """Our encoder's output at default settings: the decode benchmark's input."""
    collected = io.BytesIO()
    sink = KeepSink()
    sink.write = collected.write  # type: ignore[method-assign]
    encoder = SegmentEncoder(sink, EncoderSettings(audio=False))
    for i, rgb in enumerate(frames):
        encoder.encode(rgb, i * TICKS, MPEGTS_TIME_BASE)
    encoder.close()
    return collected.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="512x512,1280x720")
    parser.add_argument("--presets", default="superfast,ultrafast")
    parser.add_argument("--content", choices=("smooth", "noise"), default="smooth")
    args = parser.parse_args()

    ffmpeg = getattr(av, "ffmpeg_version_info", "?")
    print(f"PyAV {av.__version__}, FFmpeg {ffmpeg}; {args.frames} frames of {args.content} content, ", end="")
    print(f"{args.repeats} runs each; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("ms per frame; CPU = process CPU time of all threads (robust to other load); median of runs")
    print(HEADER)
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        frames = make_frames(args.frames, width, height, args.content)
        for preset in args.presets.split(","):
            figures, size_out = compare(
                functools.partial(encode_floor, frames, preset),
                functools.partial(encode_ours, frames, preset),
                len(frames),
                args.repeats,
            )
            print(row(f"encode {size} {preset}", figures, f"{size_out / len(frames) / 1024:.1f} KiB/frame"))
        data = encoded_stream(frames)
        if not decode_floor(data) == decode_ours(data) == len(frames):
            raise SystemExit("decoders disagree on the frame count")
        ours = functools.partial(decode_ours, data)
        figures, _ = compare(functools.partial(decode_floor, data), ours, len(frames), args.repeats)
        print(row(f"decode {size}", figures))
        figures, _ = compare(
            functools.partial(decode_floor_cached_scaler, data), ours, len(frames), args.repeats
        )
        print(row(f"decode {size} (floor with cached scaler)", figures))


if __name__ == "__main__":
    main()
