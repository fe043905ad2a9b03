"""Server-side settings of comfy-trickle, read once from environment variables.

| variable | default | meaning |
| --- | --- | --- |
| ``COMFY_TRICKLE_TOKEN`` | unset | bearer token required on every route of ours but the dev relay's |
| ``COMFY_TRICKLE_ALLOWED_HOSTS`` | unset | extra trickle hosts: ``host`` or ``host:port``, comma separated |
| ``COMFY_TRICKLE_MAX_REQUEST_BYTES`` | 4194304 | largest accepted request body (413 above) |
| ``COMFY_TRICKLE_MAX_STREAMS`` | 4 | streams running at once (429 above) |
| ``COMFY_TRICKLE_MAX_WORKFLOW_NODES`` | 1000 | nodes in a stream's workflow (400 above) |
| ``COMFY_TRICKLE_DEV_RELAY`` | 1 | ``0`` removes the dev relay and the test source from ComfyUI's server |

``*`` in the allowed hosts allows any host. Loopback hosts (``localhost``, 127.0.0.0/8, ``::1``) are
always allowed. A malformed number keeps the default and logs a warning, so a typo never stops ComfyUI
from loading the pack.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..streams.limits import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_WORKFLOW_NODES,
    StreamLimits,
)

logger = logging.getLogger(__name__)

ENV_TOKEN = "COMFY_TRICKLE_TOKEN"  # noqa: S105 - the variable name, not a secret
ENV_ALLOWED_HOSTS = "COMFY_TRICKLE_ALLOWED_HOSTS"
ENV_MAX_REQUEST_BYTES = "COMFY_TRICKLE_MAX_REQUEST_BYTES"
ENV_MAX_STREAMS = "COMFY_TRICKLE_MAX_STREAMS"
ENV_DEV_RELAY = "COMFY_TRICKLE_DEV_RELAY"
ENV_MAX_WORKFLOW_NODES = "COMFY_TRICKLE_MAX_WORKFLOW_NODES"


@dataclass(frozen=True)
class TrickleSettings:
    """Security and capacity settings shared by the routes and the stream registry; ``limits`` holds every
    bound of a request (the two configurable ones come from the environment)."""

    token: str = ""
    allowed_hosts: tuple[str, ...] = ()
    limits: StreamLimits = field(default_factory=StreamLimits)
    dev_relay: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TrickleSettings:
        """Read the ``COMFY_TRICKLE_*`` variables (default: ``os.environ``)."""
        env = os.environ if environ is None else environ
        hosts = tuple(
            entry.strip().lower() for entry in env.get(ENV_ALLOWED_HOSTS, "").split(",") if entry.strip()
        )
        return cls(
            token=env.get(ENV_TOKEN, "").strip(),
            allowed_hosts=hosts,
            limits=StreamLimits(
                max_request_bytes=_positive_int(env, ENV_MAX_REQUEST_BYTES, DEFAULT_MAX_REQUEST_BYTES),
                max_streams=_positive_int(env, ENV_MAX_STREAMS, DEFAULT_MAX_STREAMS),
                max_workflow_nodes=_positive_int(env, ENV_MAX_WORKFLOW_NODES, DEFAULT_MAX_WORKFLOW_NODES),
            ),
            dev_relay=env.get(ENV_DEV_RELAY, "1").strip().lower() not in ("0", "false", "no", "off"),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        logger.warning("comfy-trickle: %s=%r is not a positive integer; using %d", name, raw, default)
        return default
    return value
