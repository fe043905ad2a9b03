"""Moving bytes for the dev relay: streaming a segment to a subscriber and receiving one from a publisher.

The request handlers in ``relay.py`` resolve channels and seqs; these functions implement A6 steps 5-8
and A7 steps 5-7 of the protocol notes.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from .protocol import CLOSED_HEADER, CLOSED_VALUE, LATEST_HEADER, SEQ_HEADER
from .relay_state import Channel, Segment

logger = logging.getLogger(__name__)


async def stream_segment(
    request: web.Request, channel: Channel, segment: Segment, latest: int, disconnect_poll_s: float
) -> web.StreamResponse:
    """Send a segment from byte 0, then live bytes; headers only go out with the first byte."""
    position = 0  # pieces of the segment already sent
    response: web.StreamResponse | None = None
    try:
        while True:
            pieces = segment.chunks_from(position)
            if pieces:
                position += len(pieces)
                data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                if response is None:
                    headers = {SEQ_HEADER: str(segment.idx), "Content-Type": channel.mime_type}
                    if segment.idx != latest:
                        headers[LATEST_HEADER] = str(latest)
                    response = web.StreamResponse(status=200, headers=headers)
                    await response.prepare(request)
                await response.write(data)
                continue
            if segment.closed:
                break
            if not await _wait_change(request, segment, position, disconnect_poll_s):
                logger.debug("trickle relay: subscriber of %s/%d went away", channel.name, segment.idx)
                return response if response is not None else web.Response(status=499)
        if response is None:
            # Zero bytes: how a waiting subscriber learns about a dropped segment or end of stream.
            headers = {SEQ_HEADER: str(segment.idx), LATEST_HEADER: str(channel.next_write)}
            if channel.closed:
                headers[CLOSED_HEADER] = CLOSED_VALUE
            return web.Response(status=200, headers=headers)
        await response.write_eof()  # (a subscriber that left just now makes this fail like a write)
    except ConnectionError:
        logger.debug("trickle relay: subscriber of %s/%d disconnected", channel.name, segment.idx)
        return response if response is not None else web.Response(status=499)
    return response


async def _wait_change(
    request: web.Request, segment: Segment, position: int, disconnect_poll_s: float
) -> bool:
    """Wait for pieces after ``position`` or the close; False if the client disconnected meanwhile."""
    while True:
        try:
            await asyncio.wait_for(segment.wait_for_more(position), disconnect_poll_s)
            return True
        except asyncio.TimeoutError:  # noqa: UP041 - distinct from TimeoutError on Python 3.10
            transport = request.transport
            if transport is None or transport.is_closing():
                return False


async def receive_segment(
    request: web.Request, channel: Channel, segment: Segment, max_bytes: int | None = None
) -> web.StreamResponse:
    seq = segment.idx
    if max_bytes is not None and (request.content_length or 0) > max_bytes:
        return web.Response(status=413, text=f"Segment larger than {max_bytes} bytes")
    try:
        first = await _first_chunk(request, segment)
    except (ConnectionError, asyncio.IncompleteReadError, OSError) as err:
        logger.debug(
            "trickle relay: publisher of %s/%d left before its first byte: %s", channel.name, seq, err
        )
        return web.Response(status=500, text="Server error")
    if not first:
        # Woken by close before any byte, or an empty body: answer without reading further and
        # still advance next_write so the publisher's next seq is accepted.
        if first is None:
            channel.next_write = seq + 1
        else:
            channel.mark_written(seq)
            await segment.close()
        headers = {SEQ_HEADER: str(seq)}
        if channel.closed:
            headers[CLOSED_HEADER] = CLOSED_VALUE
        response = web.Response(status=200, headers=headers)
        response.force_close()
        return response
    channel.mark_written(seq)
    await segment.append(first)
    try:
        while True:
            chunk = await request.content.readany()
            if not chunk:
                break
            if max_bytes is not None and len(segment) + len(chunk) > max_bytes:
                # the bytes kept so far stay readable; the rest of this segment is refused
                await segment.close()
                response = web.Response(status=413, text=f"Segment larger than {max_bytes} bytes")
                response.force_close()
                return response
            await segment.append(chunk)
    except Exception as err:  # body read error (client went away); see module docstring
        logger.info(
            "trickle relay: error reading %s/%d after %d bytes: %s", channel.name, seq, len(segment), err
        )
        await segment.close()
        return web.Response(status=500, text="Server error")
    await segment.close()
    return web.Response(status=200, headers={SEQ_HEADER: str(seq)})


async def _first_chunk(request: web.Request, segment: Segment) -> bytes | None:
    """The first body chunk (b"" for an empty body), or None if the segment closed first."""
    if segment.closed:
        # Re-POST to a completed segment appends (A15 case 15); there is no close to race against.
        return await request.content.readany()
    read = asyncio.ensure_future(request.content.readany())
    closed = asyncio.ensure_future(segment.wait_closed())
    try:
        await asyncio.wait({read, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
        if not read.done():
            read.cancel()
    if read.done() and not read.cancelled():
        return read.result()
    return None
