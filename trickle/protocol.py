"""Wire-level names and small helpers shared by the trickle client and the dev relay.

Everything here follows the go-livepeer reference server (see docs: trickle-protocol.md, section A).
"""

from __future__ import annotations

# Response header: the effective sequence number served (GET) or written (POST).
SEQ_HEADER = "Lp-Trickle-Seq"
# Response header: the server's ``nextWrite`` (470s, empty segments, catch-up reads and ``/next``).
LATEST_HEADER = "Lp-Trickle-Latest"
# Response header: any non-empty value means the channel is closed (end of stream).
CLOSED_HEADER = "Lp-Trickle-Closed"
CLOSED_VALUE = "terminated"
# Request header on POST: a publisher restart; the server closes older segments first.
RESET_HEADER = "Lp-Trickle-Reset"
# Request header on ``POST {channel}``: the MIME type of a channel created over HTTP.
EXPECT_CONTENT_HEADER = "Expect-Content"

# Custom status: "the channel exists but this segment is not (or no longer) available".
STATUS_SEQ_UNAVAILABLE = 470

# Special sequence numbers understood by the server.
SEQ_NEXT = -1  # the segment that has not started yet
SEQ_CURRENT = -2  # the segment being written, or the last one completed

# Number of segments a channel keeps (go-livepeer ``maxSegmentsPerStream``).
RING_SIZE = 5

DEFAULT_MIME_TYPE = "application/octet-stream"


def segment_url(channel_url: str, seq: int | str) -> str:
    """URL of one segment (or of ``next``) of a channel URL such as ``http://host/base/name``."""
    return f"{channel_url.rstrip('/')}/{seq}"


def parse_int_header(value: str | None) -> int | None:
    """Parse an integer header, returning None when it is absent or malformed."""
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None
