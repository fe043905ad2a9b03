"""Where a stream session and the nodes running its prompts meet.

Nodes run on ComfyUI's prompt worker thread; sessions live on the server's event loop. Each session
owns one ``FrameBridge`` (a lock-protected table, never a module-global queue). The session registers
the frame under a *ticket* before it queues the frame's prompt and writes the ticket into the prompt's
``TrickleInput``/``TrickleOutput`` inputs, so a node never waits for the network and frames can never
cross streams: a ticket names exactly one frame of exactly one session.

Tickets are not secret (they are prompt inputs, shown by ``GET /queue``), so each ticket also gets a
random *secret* that the session hands to the ``PromptRunner`` with the frame's prompt; ComfyUI keeps
it in the queue item's sensitive part, which ``GET /queue`` and history strip. A node presents the
secret of the prompt it runs in (``host.running_prompt``); frames flow only when it matches, so a prompt
queued by hand through ``POST /prompt`` with a copied ticket can neither read nor inject frames. Such a
prompt fails with ``StreamAccessDenied``. Ticket 0 (a user's own prompt reading the newest frame) is
allowed only where the session allows it (``newest_frame_reads``: off when a token protects streams).

``BridgeDirectory`` maps stream ids to the bridges of running sessions; nodes find their stream there.
One directory per process (``PROCESS_BRIDGES``), because ComfyUI instantiates nothing per node that we
could hand a reference to; a registry can be given its own directory in tests.
"""

from __future__ import annotations

import hmac
import itertools
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import FrameTimeout, StreamAccessDenied, StreamNotBound
from .handoff import InputFrame

# Tickets are unique per process, so a prompt left over from a stopped session can never pick up a
# frame of a newer session that reuses the stream id.
_TICKETS = itertools.count(1)

# (ticket, the ticket's input frame, the images TrickleOutput received); called on ComfyUI's worker thread
OutputCallback = Callable[[int, InputFrame, Any], None]
# asked once, on ComfyUI's worker thread, when a ticket's prompt starts: True withdraws the frame
WithdrawCheck = Callable[[], bool]
# asked once, after the withdraw check, when a ticket's prompt starts: the frame to run (a newer one
# instead), or None to withdraw it
FresherFrame = Callable[[], InputFrame | None]


class FrameBridge:
    """Thread-safe frame table of one session (see the module docstring)."""

    def __init__(self, stream_id: str, on_output: OutputCallback, *, newest_frame_reads: bool = True) -> None:
        self.stream_id = stream_id
        self._on_output = on_output
        self._newest_frame_reads = newest_frame_reads
        self._changed = threading.Condition()
        self._pending: dict[int, InputFrame] = {}
        self._secrets: dict[int, str] = {}
        self._withdraw_checks: dict[int, WithdrawCheck] = {}
        self._fresher: dict[int, FresherFrame] = {}
        self._latest: InputFrame | None = None
        self._closed = False

    # --- session side -------------------------------------------------------------------------------
    def open_ticket(
        self, frame: InputFrame, withdraw_if: WithdrawCheck | None = None, fresher: FresherFrame | None = None
    ) -> int:
        """Register the frame a prompt is about to be queued for; returns its ticket. ``withdraw_if``:
        asked when the prompt starts (a frame queued behind another of its stream's prompts is withdrawn
        if that one failed: ComfyUI records the failure before it starts the next prompt). ``fresher``:
        asked then too; the frame it returns becomes the ticket's frame (an overloaded stream's prompt
        runs its newest frame, see ``streams.handoff``), None withdraws it."""
        ticket = next(_TICKETS)
        with self._changed:
            self._pending[ticket] = frame
            self._secrets[ticket] = secrets.token_urlsafe(24)
            if withdraw_if is not None:
                self._withdraw_checks[ticket] = withdraw_if
            if fresher is not None:
                self._fresher[ticket] = fresher
            self._latest = frame.followers[-1] if frame.followers else frame  # (newest of a batch)
            self._changed.notify_all()
        return ticket

    def ticket_secret(self, ticket: int) -> str:
        """The secret the prompt of an open ticket must carry (given to ``PromptRunner.submit``)."""
        with self._changed:
            return self._secrets[ticket]

    def close_ticket(self, ticket: int) -> None:
        with self._changed:
            self._pending.pop(ticket, None)
            self._secrets.pop(ticket, None)
            self._withdraw_checks.pop(ticket, None)
            self._fresher.pop(ticket, None)

    def note_latest(self, frame: InputFrame) -> None:
        """Remember the newest decoded frame (served to UI-queued prompts that name this stream)."""
        with self._changed:
            self._latest = frame
            self._changed.notify_all()

    def close(self) -> None:
        """The session ends: waiting nodes fail at once, later deliveries are ignored."""
        with self._changed:
            self._closed = True
            self._pending.clear()
            self._secrets.clear()
            self._withdraw_checks.clear()
            self._fresher.clear()
            self._latest = None
            self._changed.notify_all()

    # --- node side (ComfyUI's worker thread) -----------------------------------------------------------
    def input_frame(self, ticket: int, timeout: float, secret: str | None) -> InputFrame:
        """The frame of ``ticket``; ticket 0 (a prompt queued from the UI) gets the newest frame.

        ``secret``: what the running prompt carries (see the module docstring). Waits at most ``timeout``
        seconds (only ticket 0 can wait: a ticket's frame is registered before its prompt is queued);
        raises ``StreamAccessDenied``, ``FrameTimeout`` or, if the stream stopped or withdrew the frame,
        ``StreamNotBound``.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            self._check_access(ticket, secret)
            withdraw_if = self._withdraw_checks.pop(ticket, None)
            fresher = self._fresher.pop(ticket, None)
        # (asked outside the lock: it may take the host's queue lock)
        if withdraw_if is not None and withdraw_if():
            self.close_ticket(ticket)
        elif fresher is not None:
            self._replace(ticket, fresher())
        with self._changed:
            while True:
                if self._closed:
                    raise StreamNotBound(f"Stream {self.stream_id!r} stopped.")
                if ticket and ticket not in self._pending:
                    # a prompt the session gave up on (or of an earlier session with this id): waiting
                    # would only hold ComfyUI's executor until the timeout
                    raise StreamNotBound(f"Frame {ticket} of stream {self.stream_id!r} was withdrawn.")
                frame = self._pending.get(ticket) if ticket else self._latest
                if frame is not None:
                    # (the newest frame served to a UI prompt is not that prompt's frame)
                    if ticket and frame.stamps.input_started is None:
                        frame.stamps.input_started = time.perf_counter()
                    return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FrameTimeout(
                        f"No frame from stream {self.stream_id!r} within {timeout:g} s"
                        + ("" if ticket else " (is its input publishing?)")
                    )
                self._changed.wait(remaining)

    def _replace(self, ticket: int, frame: InputFrame | None) -> None:
        with self._changed:
            if ticket not in self._pending:
                return
            if frame is None:
                self._pending.pop(ticket)  # withdrawn: the node finds no frame (the secret stays valid)
            else:
                self._pending[ticket] = frame

    def deliver(self, ticket: int, images: Any, secret: str | None) -> bool:
        """Hand a processed frame to the session's encoder; never blocks. False when nothing takes it
        (a UI-queued prompt, or a session that stopped). Raises ``StreamAccessDenied`` like
        ``input_frame``."""
        with self._changed:
            self._check_access(ticket, secret)
            frame = self._pending.get(ticket) if ticket else None
            if frame is None or self._closed:
                return False
        self._on_output(ticket, frame, images)
        return True

    def check_access(self, ticket: int, secret: str | None) -> None:
        """Raise ``StreamAccessDenied`` unless the running prompt (carrying ``secret``) may act for this
        stream with ``ticket`` (side outputs such as ``TrickleTextOutput`` ask before they send)."""
        with self._changed:
            self._check_access(ticket, secret)

    def _check_access(self, ticket: int, secret: str | None) -> None:
        """Raise ``StreamAccessDenied`` unless the prompt may use this ticket (call under the lock)."""
        if not ticket:
            if not self._newest_frame_reads:
                raise StreamAccessDenied(
                    f"Stream {self.stream_id!r} is protected by COMFY_TRICKLE_TOKEN: only the prompts it "
                    "queues itself read or send its frames, a prompt queued by hand cannot."
                )
            return
        expected = self._secrets.get(ticket)
        if expected is None and secret:
            return  # a leftover prompt of a stream (its ticket is closed): it finds no frame, as before
        if expected is None or not secret or not hmac.compare_digest(expected, secret):
            raise StreamAccessDenied(
                f"This prompt was not queued by stream {self.stream_id!r}: only the prompts a stream queues "
                "itself read or send its frames (a frame_ticket copied from the queue grants nothing)."
            )


class BridgeDirectory:
    """Thread-safe map stream id -> bridge of the running session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bridges: dict[str, FrameBridge] = {}

    def register(self, bridge: FrameBridge) -> None:
        with self._lock:
            self._bridges[bridge.stream_id] = bridge

    def unregister(self, bridge: FrameBridge) -> None:
        with self._lock:
            if self._bridges.get(bridge.stream_id) is bridge:
                del self._bridges[bridge.stream_id]

    def lookup(self, stream_id: str) -> FrameBridge | None:
        with self._lock:
            return self._bridges.get(stream_id)


PROCESS_BRIDGES = BridgeDirectory()
