"""host.frame_log with a stand-in for PromptServer's ``client_id``: ComfyUI's "Prompt executed in" line is
dropped while a stream's frame prompt is the current one, and kept for everyone else's prompts."""

from __future__ import annotations

import logging

from comfy_trickle.host.frame_log import quiet_frame_prompt_logs
from comfy_trickle.streams.pump import FRAME_CLIENT_PREFIX


class Server:
    client_id: str | None = None


def stand_in_root(name: str) -> logging.Logger:
    """A logger of its own standing in for the root logger (the real one stays untouched)."""
    root = logging.getLogger(f"comfy-trickle-test.frame-log.{name}")
    root.setLevel(logging.INFO)
    root.propagate = False
    return root


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_per_prompt_line_of_frame_prompts_is_dropped_and_every_other_line_kept():
    server, root, kept = Server(), stand_in_root("kept"), Kept()
    root.addHandler(kept)
    assert quiet_frame_prompt_logs(server, root) is True
    assert quiet_frame_prompt_logs(server, root) is True and len(root.filters) == 1  # once
    server.client_id = FRAME_CLIENT_PREFIX + "cam"
    root.info("Prompt executed in 0.00 seconds")  # (ComfyUI formats the line before logging it)
    root.info("Prompt executed in %s", "00:10:01")
    root.info("stream cam: running -> completed")  # any other line, even during a frame prompt
    server.client_id = "browser-1"  # a person's prompt
    root.info("Prompt executed in 3.21 seconds")
    server.client_id = None  # queued without a client id
    root.info("Prompt executed in 0.50 seconds")
    assert kept.lines == [
        "stream cam: running -> completed",
        "Prompt executed in 3.21 seconds",
        "Prompt executed in 0.50 seconds",
    ]


def test_a_server_without_client_id_keeps_the_line():
    root = stand_in_root("bare")
    assert quiet_frame_prompt_logs(object(), root) is False
    assert root.filters == []
