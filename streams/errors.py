"""The one error model of the pack: ``ApiError`` (HTTP status, message, details, headers) and its kinds.

Anything a caller can act on is an ``ApiError``: routes turn it into ``{"error": message, **details}``
with its status and headers in one place (``routes.responses.json_errors``), so a bad request never
becomes a 500. ``StreamError`` and its subclasses are the stream engine's kinds, each with a fixed
status; the node-side ones (``StreamNotBound``, ``FrameTimeout``) are raised inside ComfyUI's executor and
reach users as ComfyUI's own ``execution_error`` messages. ``node_error`` is the one builder of
ComfyUI's ``node_errors`` shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class ApiError(Exception):
    """An error answered to an HTTP caller: ``http_status``, a readable ``message``, ``details`` merged into
    the JSON body (e.g. ``{"field": "params.width"}`` or ``{"node_errors": {...}}``) and extra response
    ``headers`` (``WWW-Authenticate`` on 401).

    Raise it directly with a status (``ApiError(413, "...", {"max_bytes": n})``) or use a subclass whose
    status is fixed.
    """

    def __init__(
        self,
        status: int,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = status
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON response body: ``{"error": message, **details}``."""
        return {"error": self.message, **self.details}


class StreamError(ApiError):
    """Base of every error the stream engine raises on purpose; each subclass fixes its status."""

    http_status = 500

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(type(self).http_status, message, details)


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
    """The workflow failed ComfyUI's validation, is malformed, or lacks a live input/output node.

    ``node_errors`` uses ComfyUI's own shape (built by ``node_error``); it is always in the body, also
    when empty. ``details`` adds other body fields (e.g. ``{"field": "params.prompt"}``).
    """

    http_status = 400

    def __init__(
        self,
        message: str,
        node_errors: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, {**(details or {}), "node_errors": dict(node_errors or {})})

    @property
    def node_errors(self) -> dict[str, Any]:
        """ComfyUI-shaped ``node_errors``: node id -> ``{class_type, errors, dependent_outputs}``."""
        return self.details["node_errors"]


class StreamNotBound(StreamError):
    """A live node ran without a running stream (e.g. queued from the UI's Queue button)."""

    http_status = 400


class StreamAccessDenied(StreamError):
    """A live node ran in a prompt the stream did not queue itself (see ``streams.bridge``)."""

    http_status = 403


class FrameTimeout(StreamError):
    """``TrickleInput`` waited longer than its timeout for the stream's frame."""

    http_status = 504


def node_error(
    node_id: str,
    class_type: str | None,
    error_type: str,
    message: str,
    details: str = "",
    input_name: str | None = None,
    *,
    extra_info: Mapping[str, Any] | None = None,
    dependent_outputs: Iterable[str] = (),
) -> dict[str, Any]:
    """One ``node_errors`` entry in ComfyUI's shape: ``{node_id: {"class_type", "errors": [{"type",
    "message", "details", "extra_info"}], "dependent_outputs"}}``.

    ``input_name`` goes into ``extra_info`` (where ComfyUI's frontend looks for the input to mark);
    ``extra_info`` adds ComfyUI's other fields such as ``input_config`` and ``received_value``. Several
    errors of one node are combined with ``merge_node_errors``.
    """
    info: dict[str, Any] = {} if input_name is None else {"input_name": input_name}
    info.update(extra_info or {})
    return {
        node_id: {
            "class_type": class_type,
            "errors": [{"type": error_type, "message": message, "details": details, "extra_info": info}],
            "dependent_outputs": list(dependent_outputs),
        }
    }


def merge_node_errors(*entries: Mapping[str, Any]) -> dict[str, Any]:
    """Combine ``node_error`` results into one ``node_errors`` dict; a node named twice lists every error
    (and every dependent output) once."""
    merged: dict[str, Any] = {}
    for entry in entries:
        for node_id, info in entry.items():
            known = merged.get(node_id)
            if known is None:
                merged[node_id] = {
                    "class_type": info["class_type"],
                    "errors": list(info["errors"]),
                    "dependent_outputs": list(info["dependent_outputs"]),
                }
                continue
            known["errors"].extend(info["errors"])
            known["dependent_outputs"].extend(
                output for output in info["dependent_outputs"] if output not in known["dependent_outputs"]
            )
    return merged
