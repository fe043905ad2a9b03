"""What every stream session of one registry shares: built once by ``StreamRegistry``, passed to each
``StreamSession`` and its ``PromptPump`` as one object instead of a parameter each."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .bridge import BridgeDirectory
from .executor import PromptRunner
from .fairness import ExecutorFairness
from .handoff import InputFrame

if TYPE_CHECKING:
    from .session import StreamSession

logger = logging.getLogger(__name__)

# (event name, payload): ``PromptServer.send_sync`` in production
Notifier = Callable[[str, dict[str, Any]], None]
# CPU work on a frame before its prompt is queued (e.g. uint8 -> IMAGE tensor, see nodes/frames.py)
FramePreparer = Callable[[InputFrame], Any]


@dataclass(frozen=True, slots=True)
class SessionContext:
    """The parts of the process every session uses.

    ``inert_nodes(stream_id)``: the nodes carried inert in that stream's prompts (cache keep-alive, see
    ``streams.keepalive``). ``on_finished(session)``: called once when a session
    reached its final state. ``fairness``: executor time per stream and fair turns (``streams.fairness``).
    """

    runner: PromptRunner
    bridges: BridgeDirectory
    notifier: Notifier | None
    prepare_frame: FramePreparer | None
    inert_nodes: Callable[[str], dict[str, Any]]
    on_finished: Callable[[StreamSession], None]
    newest_frame_reads: bool  # may a prompt the stream did not queue read its newest frame (no token)
    fairness: ExecutorFairness
    # a stream switched to another workflow: what others' prompts carry may change (``streams.keepalive``)
    carried_changed: Callable[[], None] = lambda: None

    def notify(self, event: str, payload: dict[str, Any]) -> None:
        """Tell the UI (never raises: a failing notifier must not break a stream)."""
        if self.notifier is None:
            return
        try:
            self.notifier(event, payload)
        except Exception:
            logger.exception("comfy-trickle: %s notification failed", event)
