"""The benchmark's measuring instruments: frame index in pixels, low-latency TS demux, figures.

If these are wrong, every latency and drop figure of ``bench/run.py`` is wrong, so they get tests of
their own (no timing assertions: only what the instruments read and compute).
"""

from __future__ import annotations

import av
import numpy as np
import pytest
from comfy_trickle.bench.gateway import FeedLog, ReceiveLog, read_index_from_luma
from comfy_trickle.bench.metrics import percentile, stream_metrics
from comfy_trickle.bench.source import encode_segment, read_index, synthetic_frame
from comfy_trickle.bench.tsdemux import TsVideoDemuxer


@pytest.mark.parametrize("index", [0, 1, 977, 65535])
def test_index_survives_inversion_and_rescaling(index):
    rgb = synthetic_frame(512, 512, index, 30.0)
    assert read_index(rgb) == index
    assert read_index(255 - rgb) == index  # the cheap one-node workflow inverts the picture
    # pytrickle re-encodes 512x512 at 640x480: the blocks move, the source size maps them back
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(width=640, height=480, format="yuv420p")
    assert read_index_from_luma(frame, (512, 512)) == index


def test_no_index_on_a_frame_without_markers():
    assert read_index(np.full((512, 512, 3), 128, dtype=np.uint8)) is None
    assert read_index(np.zeros((64, 64, 3), dtype=np.uint8)) is None  # too small to carry one


@pytest.mark.parametrize("size", [(512, 512), (1280, 720)])
def test_each_frame_decodes_as_soon_as_its_own_bytes_arrived(size):
    # libavformat would hold every frame until the next one starts; the benchmark's demuxer must not,
    # or every glass-to-glass figure would carry one or two frame intervals of measurement delay.
    segment = encode_segment(*size, fps=30.0, first_index=40, frame_count=12)
    demuxer = TsVideoDemuxer()
    decoder = av.CodecContext.create("h264", "r")
    for offset, chunk in enumerate(segment.frame_chunks):
        decoded = []
        for pes in demuxer.feed(chunk):
            for frame in decoder.decode(av.Packet(pes.payload)):
                decoded.append(read_index_from_luma(frame, size))
        assert decoded == [40 + offset]
    assert list(demuxer.flush()) == []


def test_demuxer_resynchronises_on_split_and_garbage_input():
    segment = encode_segment(320, 256, fps=30.0, first_index=0, frame_count=6)
    data = b"\x00garbage" + segment.data
    demuxer = TsVideoDemuxer()
    decoder = av.CodecContext.create("h264", "r")
    indices = []
    for start in range(0, len(data), 100):  # TS packets split across reads
        for pes in demuxer.feed(data[start : start + 100]):
            indices += [read_index_from_luma(f, (320, 256)) for f in decoder.decode(av.Packet(pes.payload))]
    for pes in demuxer.flush():
        indices += [read_index_from_luma(f, (320, 256)) for f in decoder.decode(av.Packet(pes.payload))]
    assert indices == list(range(6))


def test_stream_metrics_count_drops_duplicates_and_latency():
    feed = FeedLog(sent={i: 10.0 + i / 10 for i in range(20)}, started=10.0, finished=12.0)
    received = ReceiveLog()
    for i in range(20):
        if i % 5 == 4:
            continue  # frames 4, 9, 14, 19 never come out
        received.frames.append((i, 10.0 + i / 10 + 0.05))
    received.frames.append((3, 20.0))  # a repeat of frame 3: not counted twice, not a latency sample
    figures = stream_metrics(feed, received, warmup_s=1.0, start_requested=9.5)
    assert figures["fed"] == 20
    assert figures["received"] == 16
    assert figures["dropped"] == 4
    assert figures["drop_pct"] == 20.0
    assert figures["duplicates"] == 1
    assert figures["latency_ms"]["p50"] == 50.0
    assert figures["latency_ms"]["samples"] == 8  # frames 10..18 fed after the warm-up, minus 14
    assert figures["first_output_s"] == pytest.approx(0.55)
    assert figures["out_fps"] == pytest.approx(8 / 1.0, abs=0.01)  # 10..18 minus 14 decoded in [11, 12]


def test_percentile_interpolates():
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.95) == 5.0
