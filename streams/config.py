"""Parsing and checking a stream start request (``POST /stream/start``) into a ``StreamConfig``.

Pure logic, no ComfyUI and no network: the routes call ``parse_start_request`` before anything starts,
so a bad body costs nothing and answers 400 saying exactly what is wrong. Deeper workflow checks
(node types, inputs, links) are ComfyUI's own validation, run by the stream registry.

Accepted body (the seed's, plus ai-runner's optional fields, see docs/ARCHITECTURE.md)::

    {"subscribe_url": "http://127.0.0.1:8188/trickle/relay/in",
     "publish_url": "http://127.0.0.1:8188/trickle/relay/out",
     "gateway_request_id": "my-stream",          # the stream id ("request_id" is accepted too)
     "params": {"width": 512, "height": 512, "max_backlog_s": 1.0,   # optional
                "max_frames_per_prompt": 1,                           # optional, see streams.pump
                "first_frame_timeout_s": 300,                         # optional, see streams.warmup
                "max_lateness_s": 0.1,                                # optional, see streams.handoff
                "prompt": {...} or "<the same as a JSON string>"},
     "control_url": "", "events_url": "", "manifest_id": "", "stream_id": ""}
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..trickle.redact import redact_url
from .errors import ApiError, WorkflowInvalid, merge_node_errors, node_error
from .limits import DEFAULT_DIMENSION, DEFAULT_LIMITS, StreamLimits

# Stream ids end up in URL paths (/stream/{id}/status) and logs, so keep them plain.
STREAM_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")

Workflow = dict[str, Any]
FRAMES_PER_PROMPT_PARAM = "max_frames_per_prompt"
FIRST_FRAME_TIMEOUT_PARAM = "first_frame_timeout_s"
LATENESS_PARAM = "max_lateness_s"


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
    data_url: str = ""  # BYOC/pytrickle text output channel (go-livepeer byoc/stream_orchestrator.go)
    manifest_id: str = ""
    runner_stream_id: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    max_backlog_s: float | None = None  # params.max_backlog_s, checked; None: the registry's default

    @property
    def frames_per_prompt(self) -> int:
        """``params.max_frames_per_prompt`` (checked by ``parse_start_request``): the most frames a prompt
        takes as one batch when frames wait (``streams.pump``); 1 when not given."""
        return int(self.params.get(FRAMES_PER_PROMPT_PARAM, 1))

    @property
    def first_frame_timeout_s(self) -> float:
        """``params.first_frame_timeout_s`` (checked by ``parse_start_request``): how long a generation may
        take to put out its first frame (``streams.warmup``); the limits' default when not given."""
        value = self.params.get(FIRST_FRAME_TIMEOUT_PARAM)
        return DEFAULT_LIMITS.default_first_frame_timeout_s if value is None else float(value)

    @property
    def max_lateness_s(self) -> float:
        """``params.max_lateness_s`` (checked by ``parse_start_request``): how late a frame may be served
        before the stream serves its newest frames (``streams.handoff``). Not given: ``max_backlog_s``
        where that was given (who asks for a backlog asks to fall behind rather than drop), else the
        limits' default."""
        value = self.params.get(LATENESS_PARAM)
        if value is not None:
            return float(value)
        return DEFAULT_LIMITS.default_lateness_s if self.max_backlog_s is None else self.max_backlog_s

    def trickle_urls(self) -> dict[str, str]:
        """The non-empty trickle URLs by field name (what the host allowlist checks)."""
        urls = {
            "subscribe_url": redact_url(self.subscribe_url),
            "publish_url": redact_url(self.publish_url),
            "control_url": redact_url(self.control_url),
            "events_url": self.events_url,
            "data_url": self.data_url,
        }
        return {name: url for name, url in urls.items() if url}

    def to_json(self, include_workflow: bool = False) -> dict[str, Any]:
        """JSON-ready view for status bodies; the workflow is left out unless asked for (it can be big)."""
        body: dict[str, Any] = {
            "stream_id": self.stream_id,
            "subscribe_url": redact_url(self.subscribe_url),
            "publish_url": redact_url(self.publish_url),
            "control_url": redact_url(self.control_url),
            "events_url": redact_url(self.events_url),
            "data_url": redact_url(self.data_url),
            "manifest_id": self.manifest_id,
            "runner_stream_id": self.runner_stream_id,
            "width": self.width,
            "height": self.height,
            "workflow_nodes": len(self.workflow),
        }
        if include_workflow:
            body["workflow"] = self.workflow
        return body


def parse_start_request(body: Any, limits: StreamLimits = DEFAULT_LIMITS) -> StreamConfig:
    """Check a decoded start request body against ``limits`` and build its ``StreamConfig``.

    Raises a 400 ``ApiError`` naming the offending field for anything malformed. The host allowlist
    (403) is the routes' job, since it depends on server settings.
    """
    if not isinstance(body, dict):
        raise ApiError(400, f"Request body must be a JSON object, got {_json_type(body)}")

    stream_id = _stream_id(body)
    subscribe_url = _url(body, "subscribe_url", required=True)
    publish_url = _url(body, "publish_url", required=True)

    params = body.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ApiError(
            400, f"Field params must be an object, got {_json_type(params)}", {"field": "params"}
        )

    width = _dimension(params, "width", limits)
    height = _dimension(params, "height", limits)
    max_backlog_s = _backlog(params, limits)
    _check_frames_per_prompt(params, limits)
    _check_first_frame_timeout(params, limits)
    seconds_param(params, LATENESS_PARAM, limits.min_lateness_s, limits.max_lateness_s)
    seconds_param(params, "input_wait_s", 0.0, limits.max_input_wait_s)  # (read by streams.input_wait)
    workflow = parse_workflow(params.get("prompt"), field_name="params.prompt")
    if len(workflow) > limits.max_workflow_nodes:
        raise ApiError(
            400,
            f"Field params.prompt has {len(workflow)} nodes, over the limit of {limits.max_workflow_nodes} "
            "(max_workflow_nodes, set by COMFY_TRICKLE_MAX_WORKFLOW_NODES)",
            {
                "field": "params.prompt",
                "limit": "max_workflow_nodes",
                "max_workflow_nodes": limits.max_workflow_nodes,
            },
        )

    extra_params = {
        k: v for k, v in params.items() if k not in ("width", "height", "prompt", "max_backlog_s")
    }
    return StreamConfig(
        stream_id=stream_id,
        subscribe_url=subscribe_url,
        publish_url=publish_url,
        workflow=workflow,
        width=width,
        height=height,
        control_url=_url(body, "control_url", required=False),
        events_url=_url(body, "events_url", required=False),
        data_url=_url(body, "data_url", required=False),
        manifest_id=_optional_string(body, "manifest_id"),
        runner_stream_id=_optional_string(body, "stream_id"),
        params=extra_params,
        max_backlog_s=max_backlog_s,
    )


def parse_workflow(prompt: Any, field_name: str = "prompt") -> Workflow:
    """Turn ``prompt`` (an API-format workflow as an object or a JSON string) into a checked dict.

    Checks only the shape ComfyUI's validation relies on (every node an object with a string
    ``class_type`` and an object ``inputs``), so that validation can never crash on our input.
    Shape errors per node come back in ComfyUI's ``node_errors`` layout.
    """
    if prompt is None or prompt == "":
        raise ApiError(400, f"Missing required field: {field_name}", {"field": field_name})
    if isinstance(prompt, str):
        try:
            prompt = json.loads(prompt)
        except ValueError as err:
            raise ApiError(
                400, f"Invalid prompt JSON in {field_name}: {err}", {"field": field_name}
            ) from err
        except RecursionError:  # json.loads recurses per nesting level
            raise ApiError(
                400, f"Field {field_name} is nested too deeply to be a workflow", {"field": field_name}
            ) from None
    if not isinstance(prompt, dict):
        raise ApiError(
            400,
            f"Field {field_name} must be a workflow object (API format: node id -> "
            f"{{class_type, inputs}}), got {_json_type(prompt)}",
            {"field": field_name},
        )
    if isinstance(prompt.get("nodes"), list) and isinstance(prompt.get("links"), list):
        raise ApiError(
            400,
            f"Field {field_name} is a UI-format workflow; send the API format instead "
            "(ComfyUI: Workflow > Export (API))",
            {"field": field_name},
        )
    if not prompt:
        raise ApiError(400, f"Field {field_name} is an empty workflow", {"field": field_name})

    node_errors = merge_node_errors(
        *(
            node_error(str(node_id), _class_type_of(node), "invalid_node", problem, f"Node ID '#{node_id}'")
            for node_id, node in prompt.items()
            if (problem := _node_shape_problem(node)) is not None
        )
    )
    if node_errors:
        raise WorkflowInvalid(
            f"Workflow in {field_name} has malformed nodes", node_errors, {"field": field_name}
        )
    return prompt


def _class_type_of(node: Any) -> str | None:
    class_type = node.get("class_type") if isinstance(node, dict) else None
    return class_type if isinstance(class_type, str) else None


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
        raise ApiError(400, "Missing required field: gateway_request_id", {"field": "gateway_request_id"})
    if not isinstance(value, str):
        raise ApiError(400, f"Field {name} must be a string, got {_json_type(value)}", {"field": name})
    if not STREAM_ID_PATTERN.match(value):
        raise ApiError(
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
            raise ApiError(400, f"Missing required field: {name}", {"field": name})
        return ""
    if not isinstance(value, str):
        raise ApiError(
            400, f"Field {name} must be a string URL, got {_json_type(value)}", {"field": name}
        )
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as err:
        raise ApiError(400, f"Field {name} is not a valid URL: {err}", {"field": name}) from err
    if parts.scheme not in ("http", "https") or not hostname:
        raise ApiError(
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
        raise ApiError(400, f"Field {name} must be a string, got {_json_type(value)}", {"field": name})
    return value


def _finite(value: float) -> bool:
    """math.isfinite without its OverflowError: JSON integers have any number of digits."""
    return isinstance(value, int) or math.isfinite(value)


def _shown(value: Any) -> str:
    """A rejected value for an error message, at most 40 characters (a 400-digit number stays short)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _dimension(params: dict[str, Any], name: str, limits: StreamLimits) -> int:
    field_name = f"params.{name}"
    value = params.get(name)
    if value is None:
        return limits.default_dimension
    # bool is an int subclass; a float like 512.0 is accepted as the integer it spells.
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not _finite(value)
        or value != int(value)
    ):
        message = f"Field {field_name} must be an integer, got {_shown(value)}"
        raise ApiError(400, message, {"field": field_name})
    value = int(value)
    if not limits.dimension_ok(value):
        raise ApiError(
            400,
            f"Field {field_name} must be a multiple of {limits.dimension_multiple} between "
            f"{limits.min_dimension} and {limits.max_dimension}, got {_shown(value)}",
            {"field": field_name},
        )
    return value


def _backlog(params: dict[str, Any], limits: StreamLimits) -> float | None:
    return seconds_param(params, "max_backlog_s", limits.min_backlog_s, limits.max_backlog_s)


def seconds_param(params: dict[str, Any], name: str, low: float, high: float) -> float | None:
    """``params[name]`` as seconds in ``low..high`` (else a 400 naming the field); None when not given."""
    if name not in params:
        return None
    value = params[name]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not _finite(value)
        or not low <= value <= high
    ):
        raise ApiError(
            400,
            f"params.{name} must be seconds in {low:g}..{high:g}, got {_shown(value)}",
            {"field": f"params.{name}"},
        )
    return float(value)


def _check_frames_per_prompt(params: dict[str, Any], limits: StreamLimits) -> None:
    value = params.get(FRAMES_PER_PROMPT_PARAM, 1)
    whole = isinstance(value, int) and not isinstance(value, bool)
    if not whole or not 1 <= value <= limits.max_frames_per_prompt:
        raise ApiError(
            400,
            f"params.{FRAMES_PER_PROMPT_PARAM} must be a whole number in 1..{limits.max_frames_per_prompt}, "
            f"got {_shown(value)}",
            {"field": f"params.{FRAMES_PER_PROMPT_PARAM}"},
        )


def _check_first_frame_timeout(params: dict[str, Any], limits: StreamLimits) -> None:
    low, high = limits.min_first_frame_timeout_s, limits.max_first_frame_timeout_s
    seconds_param(params, FIRST_FRAME_TIMEOUT_PARAM, low, high)


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
