"""Parsing and checking a stream start request (``POST /stream/start``) into a ``StreamConfig``.

Pure logic, no ComfyUI and no network: the routes call ``parse_start_request`` before anything starts,
so a bad body costs nothing and answers 400 saying exactly what is wrong. Deeper workflow checks
(node types, inputs, links) are ComfyUI's own validation, run by the stream registry.

Accepted body (the seed's, plus ai-runner's optional fields, see docs/ARCHITECTURE.md)::

    {"subscribe_url": "http://127.0.0.1:8188/trickle/relay/in",
     "publish_url": "http://127.0.0.1:8188/trickle/relay/out",
     "gateway_request_id": "my-stream",          # the stream id ("request_id" is accepted too)
     "params": {"width": 512, "height": 512,
                "prompt": {...} or "<the same as a JSON string>"},
     "control_url": "", "events_url": "", "manifest_id": "", "stream_id": ""}
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MIN_DIMENSION = 64
MAX_DIMENSION = 2048
DIMENSION_MULTIPLE = 8
DEFAULT_DIMENSION = 512

# Stream ids end up in URL paths (/stream/{id}/status) and logs, so keep them plain.
STREAM_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")

Workflow = dict[str, Any]


class RequestError(Exception):
    """A request the caller got wrong: HTTP ``status``, a readable ``message`` and optional ``details``.

    ``details`` is merged into the JSON error body, e.g. ``{"node_errors": {...}}`` or ``{"field": ...}``;
    ``headers`` are extra response headers (``WWW-Authenticate`` on 401).
    """

    def __init__(
        self,
        status: int,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})

    def to_json(self) -> dict[str, Any]:
        """The response body: ``{"error": message, **details}``."""
        return {"error": self.message, **self.details}


@dataclass(frozen=True)
class StreamConfig:
    """Everything a stream needs to start, checked and normalised.

    ``stream_id`` is our id (the gateway's ``gateway_request_id``); ``runner_stream_id`` keeps
    ai-runner's separate ``stream_id`` field, stored for logs and later control/events support.
    ``workflow`` is the API-format ComfyUI workflow, always a dict here.
    """

    stream_id: str
    subscribe_url: str
    publish_url: str
    workflow: Workflow
    width: int = DEFAULT_DIMENSION
    height: int = DEFAULT_DIMENSION
    control_url: str = ""
    events_url: str = ""
    manifest_id: str = ""
    runner_stream_id: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def trickle_urls(self) -> dict[str, str]:
        """The non-empty trickle URLs by field name (what the host allowlist checks)."""
        urls = {
            "subscribe_url": self.subscribe_url,
            "publish_url": self.publish_url,
            "control_url": self.control_url,
            "events_url": self.events_url,
        }
        return {name: url for name, url in urls.items() if url}

    def to_json(self, include_workflow: bool = False) -> dict[str, Any]:
        """JSON-ready view for status bodies; the workflow is left out unless asked for (it can be big)."""
        body: dict[str, Any] = {
            "stream_id": self.stream_id,
            "subscribe_url": self.subscribe_url,
            "publish_url": self.publish_url,
            "control_url": self.control_url,
            "events_url": self.events_url,
            "manifest_id": self.manifest_id,
            "runner_stream_id": self.runner_stream_id,
            "width": self.width,
            "height": self.height,
            "workflow_nodes": len(self.workflow),
        }
        if include_workflow:
            body["workflow"] = self.workflow
        return body


def parse_start_request(body: Any) -> StreamConfig:
    """Check a decoded start request body and build its ``StreamConfig``.

    Raises ``RequestError(400, ...)`` naming the offending field for anything malformed. The host
    allowlist (403) is the routes' job, since it depends on server settings.
    """
    if not isinstance(body, dict):
        raise RequestError(400, f"Request body must be a JSON object, got {_json_type(body)}")

    stream_id = _stream_id(body)
    subscribe_url = _url(body, "subscribe_url", required=True)
    publish_url = _url(body, "publish_url", required=True)

    params = body.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RequestError(
            400, f"Field params must be an object, got {_json_type(params)}", {"field": "params"}
        )

    width = _dimension(params, "width")
    height = _dimension(params, "height")
    workflow = parse_workflow(params.get("prompt"), field_name="params.prompt")

    extra_params = {k: v for k, v in params.items() if k not in ("width", "height", "prompt")}
    return StreamConfig(
        stream_id=stream_id,
        subscribe_url=subscribe_url,
        publish_url=publish_url,
        workflow=workflow,
        width=width,
        height=height,
        control_url=_url(body, "control_url", required=False),
        events_url=_url(body, "events_url", required=False),
        manifest_id=_optional_string(body, "manifest_id"),
        runner_stream_id=_optional_string(body, "stream_id"),
        params=extra_params,
    )


def parse_workflow(prompt: Any, field_name: str = "prompt") -> Workflow:
    """Turn ``prompt`` (an API-format workflow as an object or a JSON string) into a checked dict.

    Checks only the shape ComfyUI's validation relies on (every node an object with a string
    ``class_type`` and an object ``inputs``), so that validation can never crash on our input.
    Shape errors per node come back in ComfyUI's ``node_errors`` layout.
    """
    if prompt is None or prompt == "":
        raise RequestError(400, f"Missing required field: {field_name}", {"field": field_name})
    if isinstance(prompt, str):
        try:
            prompt = json.loads(prompt)
        except ValueError as err:
            raise RequestError(
                400, f"Invalid prompt JSON in {field_name}: {err}", {"field": field_name}
            ) from err
        except RecursionError:  # json.loads recurses per nesting level
            raise RequestError(
                400, f"Field {field_name} is nested too deeply to be a workflow", {"field": field_name}
            ) from None
    if not isinstance(prompt, dict):
        raise RequestError(
            400,
            f"Field {field_name} must be a workflow object (API format: node id -> "
            f"{{class_type, inputs}}), got {_json_type(prompt)}",
            {"field": field_name},
        )
    if isinstance(prompt.get("nodes"), list) and isinstance(prompt.get("links"), list):
        raise RequestError(
            400,
            f"Field {field_name} is a UI-format workflow; send the API format instead "
            "(ComfyUI: Workflow > Export (API))",
            {"field": field_name},
        )
    if not prompt:
        raise RequestError(400, f"Field {field_name} is an empty workflow", {"field": field_name})

    node_errors: dict[str, Any] = {}
    for node_id, node in prompt.items():
        problem = _node_shape_problem(node)
        if problem is not None:
            class_type = node.get("class_type") if isinstance(node, dict) else None
            node_errors[str(node_id)] = {
                "class_type": class_type if isinstance(class_type, str) else None,
                "errors": [
                    {
                        "type": "invalid_node",
                        "message": problem,
                        "details": f"Node ID '#{node_id}'",
                        "extra_info": {},
                    }
                ],
                "dependent_outputs": [],
            }
    if node_errors:
        raise RequestError(
            400,
            f"Workflow in {field_name} has malformed nodes",
            {"field": field_name, "node_errors": node_errors},
        )
    return prompt


def _node_shape_problem(node: Any) -> str | None:
    if not isinstance(node, dict):
        return f"node must be an object with class_type and inputs, got {_json_type(node)}"
    class_type = node.get("class_type")
    if not isinstance(class_type, str) or not class_type:
        return "node has no class_type"
    if not isinstance(node.get("inputs"), dict):
        return "node has no inputs object"
    return None


def _stream_id(body: dict[str, Any]) -> str:
    # ai-runner's internal call names it request_id; the seed and the gateway gateway_request_id.
    value = body.get("gateway_request_id")
    name = "gateway_request_id"
    if value in (None, "") and body.get("request_id") not in (None, ""):
        value, name = body.get("request_id"), "request_id"
    if value in (None, ""):
        raise RequestError(400, "Missing required field: gateway_request_id", {"field": "gateway_request_id"})
    if not isinstance(value, str):
        raise RequestError(400, f"Field {name} must be a string, got {_json_type(value)}", {"field": name})
    if not STREAM_ID_PATTERN.match(value):
        raise RequestError(
            400,
            f"Field {name} must be 1-128 characters of letters, digits, '.', '_', ':' or '-' "
            "and start with a letter or digit",
            {"field": name},
        )
    return value


def _url(body: dict[str, Any], name: str, required: bool) -> str:
    value = body.get(name)
    if value in (None, ""):
        if required:
            raise RequestError(400, f"Missing required field: {name}", {"field": name})
        return ""
    if not isinstance(value, str):
        raise RequestError(
            400, f"Field {name} must be a string URL, got {_json_type(value)}", {"field": name}
        )
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as err:
        raise RequestError(400, f"Field {name} is not a valid URL: {err}", {"field": name}) from err
    if parts.scheme not in ("http", "https") or not hostname:
        raise RequestError(
            400,
            f"Field {name} must be an http:// or https:// URL with a host, got {value!r}",
            {"field": name},
        )
    return value


def _optional_string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RequestError(400, f"Field {name} must be a string, got {_json_type(value)}", {"field": name})
    return value


def _dimension(params: dict[str, Any], name: str) -> int:
    field_name = f"params.{name}"
    value = params.get(name)
    if value is None:
        return DEFAULT_DIMENSION
    # bool is an int subclass; a float like 512.0 is accepted as the integer it spells.
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise RequestError(
            400, f"Field {field_name} must be an integer, got {value!r}", {"field": field_name}
        )
    value = int(value)
    if not MIN_DIMENSION <= value <= MAX_DIMENSION or value % DIMENSION_MULTIPLE:
        raise RequestError(
            400,
            f"Field {field_name} must be a multiple of {DIMENSION_MULTIPLE} between {MIN_DIMENSION} "
            f"and {MAX_DIMENSION}, got {value}",
            {"field": field_name},
        )
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
