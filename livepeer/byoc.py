"""Map what go-livepeer's BYOC orchestrator sends onto our stream API.

``go-livepeer:byoc/stream_orchestrator.go``: ``StartStream`` POSTs ``{CapabilityUrl}/stream/start`` with
``gateway_request_id``, ``control_url`` and ``events_url`` always, ``subscribe_url`` / ``publish_url`` /
``data_url`` when video ingress / egress / data output are enabled, every key of the gateway's JSON body
merged in (e.g. ``params``); ``createWorkerReq`` adds ``X-Stream-Id: <stream id>`` and, when the
capability registered a token, ``Authorization: Bearer <token>``. ``StopStream`` POSTs ``/stream/stop``
and ``UpdateStream`` ``/stream/params`` with the gateway's body (or none) and the same ``X-Stream-Id``.
The orchestrator reads back only the status code and body (>399: the gateway sees our error; 401 makes
it drop the capability); the ``X-*-Url`` response headers are its own, sent to the gateway.
The ``Livepeer`` job header (signed job request) stays between gateway and orchestrator.

comfystream's BYOC worker (pytrickle ``StreamStartRequest``) names the workflow ``params.prompts`` (a dict,
a JSON string, or a list whose first dict is used); we accept that as ``params.prompt``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STREAM_ID_HEADER = "X-Stream-Id"


def stream_id_of(headers: Mapping[str, str], body: Any = None) -> str:
    """The BYOC stream id: ``X-Stream-Id``, else the body's ``gateway_request_id``/``stream_id``."""
    value = headers.get(STREAM_ID_HEADER, "").strip()
    if not value and isinstance(body, dict):
        value = str(body.get("gateway_request_id") or body.get("stream_id") or "").strip()
    return value


def adapt_start_body(headers: Mapping[str, str], body: Any) -> Any:
    """A BYOC (or pytrickle-shaped) start body in our shape; any other body unchanged."""
    if not isinstance(body, dict):
        return body
    body = dict(body)
    header_id = headers.get(STREAM_ID_HEADER, "").strip()
    if header_id and not body.get("gateway_request_id"):
        body["gateway_request_id"] = header_id
    params = body.get("params")
    if isinstance(params, dict) and "prompt" not in params and "prompts" in params:
        params = {k: v for k, v in params.items() if k != "prompts"}
        params["prompt"] = _first_prompt(body["params"]["prompts"])
        body["params"] = params
    return body


def _first_prompt(prompts: Any) -> Any:
    if isinstance(prompts, list):
        return next((p for p in prompts if isinstance(p, (dict, str))), prompts)
    return prompts
