"""Media: streaming MPEG-TS/H.264 decode and encode, audio passthrough, frame format conversion.

PyAV + numpy (torch only inside :mod:`.frames`, imported lazily); never imports ComfyUI.

- :class:`StreamDecoder` - bytes of a trickle subscription in (any thread), uint8 RGB frames and audio
  packets out (decode thread); :func:`decode_bytes` for whole byte strings.
- :class:`SegmentEncoder` - RGB frames in (one worker thread), self-contained TS segments out to a
  :class:`SegmentSink`, trickled frame by frame; audio passthrough via ``add_audio`` (any thread).
- :mod:`.frames` - ComfyUI IMAGE conversions; :mod:`.jpeg` - still JPEG for the UI preview.
- :mod:`.adts` - the AAC ADTS header (one sample-rate table for the decoder, encoder and test tone).
- :mod:`.synthetic` - deterministic test source (pattern with a readable frame index, tone).
"""

from .decoder import StreamDecoder, decode_bytes
from .encoder import EncoderSettings, EncoderStats, SegmentEncoder, SegmentSink
from .frames import comfy_image_to_frames, rgb_uint8_to_comfy_image, to_comfy_image
from .synthetic import SyntheticChunk, SyntheticConfig, SyntheticSegment, SyntheticSource, read_frame_index
from .types import MPEGTS_TIME_BASE, AudioPacket, DecodedFrame, DecoderStats

__all__ = [
    "MPEGTS_TIME_BASE",
    "AudioPacket",
    "DecodedFrame",
    "DecoderStats",
    "EncoderSettings",
    "EncoderStats",
    "SegmentEncoder",
    "SegmentSink",
    "StreamDecoder",
    "SyntheticChunk",
    "SyntheticConfig",
    "SyntheticSegment",
    "SyntheticSource",
    "comfy_image_to_frames",
    "decode_bytes",
    "read_frame_index",
    "rgb_uint8_to_comfy_image",
    "to_comfy_image",
]
