"""The narrow interface through which stream sessions use ComfyUI's executor.

Sessions never import ComfyUI: they talk to a ``PromptRunner``. ``host.prompt_runner.ComfyPromptRunner``
implements it on ``PromptServer.instance.prompt_queue`` (the same queue the UI's Queue button feeds, so
stream frames and user prompts share ComfyUI's one executor thread fairly); unit tests use fakes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ValidationResult:
    """What ComfyUI's ``execution.validate_prompt`` said about a workflow.

    ``workflow`` is the validated copy: ComfyUI's validation converts widget values in place (e.g. a
    string "5" for an INT input becomes 5), and per-frame prompts are built from that copy.
    """

    ok: bool
    error: dict[str, Any] | None
    outputs: list[str]
    node_errors: dict[str, Any]
    workflow: dict[str, Any] = field(default_factory=dict)


class PromptState(enum.Enum):
    """Where one submitted prompt is."""

    PENDING = "pending"  # queued or running
    SUCCESS = "success"
    ERROR = "error"  # a node raised
    INTERRUPTED = "interrupted"  # ComfyUI's Interrupt hit it
    LOST = "lost"  # neither queued, running nor in history (e.g. the user cleared the queue)


@dataclass(frozen=True, slots=True)
class PromptOutcome:
    """The state of a prompt plus, for an error, which node failed and why."""

    state: PromptState
    node_id: str | None = None
    node_type: str | None = None
    message: str | None = None

    @property
    def finished(self) -> bool:
        return self.state is not PromptState.PENDING


class PromptRunner(Protocol):
    """ComfyUI's executor as sessions see it. Every method is cheap and never blocks on a prompt."""

    async def validate(self, workflow: dict[str, Any], output_node_ids: list[str]) -> ValidationResult:
        """Validate ``workflow`` with ComfyUI's own validation, checking only ``output_node_ids`` (and
        everything they depend on). Runs on the event loop that owns ComfyUI's server."""
        ...

    def submit(self, prompt: dict[str, Any], output_node_ids: list[str], client_id: str, secret: str) -> str:
        """Queue an already validated prompt (no re-validation) executing ``output_node_ids``; returns its
        prompt id. ``secret`` travels with the prompt where no one else can read or set it (the live nodes
        check it, see ``streams.bridge``). Thread-safe."""
        ...

    def outcome(self, prompt_id: str) -> PromptOutcome:
        """Current state of a submitted prompt (a dictionary look-up under the queue's lock)."""
        ...

    def forget(self, prompt_id: str) -> None:
        """Drop every trace of the prompt: remove it from the queue if it has not started, delete its
        history entry now or as soon as it finishes. Idempotent."""
        ...
