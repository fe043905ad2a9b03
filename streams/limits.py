"""The limits a stream request must keep, in one typed place: frame size, hand-off backlog, request body
size, how many streams run at once and how many nodes a stream's workflow may have.

Config parsing checks sizes and ``params.max_backlog_s`` with them, the routes cap request bodies and
publish them (``GET /stream/limits``) so the web UI validates with the server's numbers, and the server
settings fill the configurable ones (``COMFY_TRICKLE_MAX_REQUEST_BYTES``, ``COMFY_TRICKLE_MAX_STREAMS``,
``COMFY_TRICKLE_MAX_WORKFLOW_NODES``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MIN_DIMENSION = 64
MAX_DIMENSION = 2048
DIMENSION_MULTIPLE = 8
DEFAULT_DIMENSION = 512
MIN_BACKLOG_S = 0.05
MAX_BACKLOG_S = 120.0
DEFAULT_BACKLOG_S = 1.0
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_STREAMS = 4
# a push (one long MPEG-TS POST) is a stream, so its size rule is a rate: reading slows to this many
# bytes a second (back-pressure, 64 Mbit/s), and one segment (keyframe to keyframe) may not exceed
# the segment bound (413): relays hold whole segments in memory
DEFAULT_MAX_PUSH_BYTES_PER_S = 8 * 1024 * 1024
DEFAULT_MAX_PUSH_SEGMENT_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_MEDIA_CONNECTIONS = 16
DEFAULT_INPUT_WAIT_S = 30.0
MAX_INPUT_WAIT_S = 600.0
# a generation's first output frame (model loads, compiles, a queue of other people's prompts ahead of it)
# may take this long before the stream gives up on it (``streams.warmup``)
MIN_FIRST_FRAME_TIMEOUT_S = 1.0
DEFAULT_FIRST_FRAME_TIMEOUT_S = 300.0
MAX_FIRST_FRAME_TIMEOUT_S = 3600.0
# how late (behind the input's live edge) the frame a prompt runs may be before the stream serves its newest
# frames (``streams.handoff``): above a keeping-up stream's hiccups, well under a second-old queue
MIN_LATENESS_S = 0.01
DEFAULT_LATENESS_S = 0.1
MAX_LATENESS_S = MAX_BACKLOG_S
# ComfyUI's per-prompt cost grows with the node count (cache keys expand every node's ancestry), so one
# stream's huge workflow would slow the shared executor for everyone (issue 13 §9)
DEFAULT_MAX_WORKFLOW_NODES = 1000
# a batch of N frames holds N float IMAGE tensors at once in every node of the workflow
MAX_FRAMES_PER_PROMPT = 16


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """Bounds of a stream request. Width and height: ``min_dimension..max_dimension``, a multiple of
    ``dimension_multiple`` (the encoder's macroblock-friendly step). ``params.max_backlog_s``: seconds of
    video the frame hand-off may hold before dropping the oldest, ``min_backlog_s..max_backlog_s``.
    ``params.input_wait_s``: seconds a stream waits (state ``waiting``) for its input channel to exist,
    ``0..max_input_wait_s``, ``default_input_wait_s`` when not given. ``params.max_frames_per_prompt``:
    ``1..max_frames_per_prompt`` (``streams.pump``). ``params.first_frame_timeout_s``: seconds a workflow
    (each generation of it) may take to put out its first frame, ``min_first_frame_timeout_s..
    max_first_frame_timeout_s``, ``default_first_frame_timeout_s`` when not given (``streams.warmup``).
    ``params.max_lateness_s``: how late a frame may be served before the stream goes newest first
    (``streams.handoff``), ``min_lateness_s..max_lateness_s``, ``default_lateness_s`` when not given."""

    min_dimension: int = MIN_DIMENSION
    max_dimension: int = MAX_DIMENSION
    dimension_multiple: int = DIMENSION_MULTIPLE
    default_dimension: int = DEFAULT_DIMENSION
    min_backlog_s: float = MIN_BACKLOG_S
    max_backlog_s: float = MAX_BACKLOG_S
    default_backlog_s: float = DEFAULT_BACKLOG_S
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_streams: int = DEFAULT_MAX_STREAMS
    max_push_bytes_per_s: int = DEFAULT_MAX_PUSH_BYTES_PER_S
    max_push_segment_bytes: int = DEFAULT_MAX_PUSH_SEGMENT_BYTES
    max_media_connections: int = DEFAULT_MAX_MEDIA_CONNECTIONS  # pushes and watches at once, each
    default_input_wait_s: float = DEFAULT_INPUT_WAIT_S
    max_input_wait_s: float = MAX_INPUT_WAIT_S
    max_workflow_nodes: int = DEFAULT_MAX_WORKFLOW_NODES
    max_frames_per_prompt: int = MAX_FRAMES_PER_PROMPT
    min_first_frame_timeout_s: float = MIN_FIRST_FRAME_TIMEOUT_S
    default_first_frame_timeout_s: float = DEFAULT_FIRST_FRAME_TIMEOUT_S
    max_first_frame_timeout_s: float = MAX_FIRST_FRAME_TIMEOUT_S
    min_lateness_s: float = MIN_LATENESS_S
    default_lateness_s: float = DEFAULT_LATENESS_S
    max_lateness_s: float = MAX_LATENESS_S

    def dimension_ok(self, value: int) -> bool:
        """True when ``value`` is an allowed width or height."""
        return self.min_dimension <= value <= self.max_dimension and value % self.dimension_multiple == 0

    def backlog_ok(self, seconds: float) -> bool:
        """True when ``seconds`` is an allowed ``params.max_backlog_s``."""
        return self.min_backlog_s <= seconds <= self.max_backlog_s

    def to_json(self) -> dict[str, Any]:
        """Every limit by field name (the body of ``GET /stream/limits``)."""
        return asdict(self)


DEFAULT_LIMITS = StreamLimits()
