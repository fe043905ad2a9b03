"""Typed errors of the stream engine; each carries the HTTP status a route should answer with.

Routes turn any ``StreamError`` into ``web.json_response(err.body(), status=err.http_status)``, so a
bad request never becomes a 500. The node-side errors (``StreamNotBound``, ``FrameTimeout``) are raised
inside ComfyUI's executor and reach users as ComfyUI's own ``execution_error`` messages.
"""

from __future__ import annotations

from typing import Any


class StreamError(Exception):
    """Base of every error the stream engine raises on purpose."""

    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        """JSON body for an HTTP error response."""
        return {"error": self.message}


class StreamExists(StreamError):
    """A stream with this id is already running (finished streams may be restarted)."""

    http_status = 409


class StreamLimitReached(StreamError):
    """The registry already runs ``max_streams`` streams."""

    http_status = 429


class StreamNotFound(StreamError):
    """No stream with this id is known."""

    http_status = 404


class WorkflowInvalid(StreamError):
    """The workflow failed ComfyUI's validation or lacks a live input/output node.

    ``node_errors`` uses ComfyUI's own shape: node id -> ``{"class_type", "errors": [{"type", "message",
    "details", "extra_info": {"input_name"?}}], "dependent_outputs"}``.
    """

    http_status = 400

    def __init__(self, message: str, node_errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.node_errors: dict[str, Any] = node_errors or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "node_errors": self.node_errors}


class InvalidParameter(StreamError):
    """A stream parameter (``params.*``) has a bad value."""

    http_status = 400


class StreamNotBound(StreamError):
    """A live node ran without a running stream (e.g. queued from the UI's Queue button)."""

    http_status = 400


class FrameTimeout(StreamError):
    """``TrickleInput`` waited longer than its timeout for the stream's frame."""

    http_status = 504


def node_error(
    node_id: str,
    class_type: str,
    error_type: str,
    message: str,
    details: str = "",
    input_name: str | None = None,
) -> dict[str, Any]:
    """One ``node_errors`` entry in ComfyUI's shape (for errors we detect ourselves)."""
    extra_info: dict[str, Any] = {}
    if input_name is not None:
        extra_info["input_name"] = input_name
    return {
        node_id: {
            "class_type": class_type,
            "errors": [
                {"type": error_type, "message": message, "details": details, "extra_info": extra_info}
            ],
            "dependent_outputs": [],
        }
    }
