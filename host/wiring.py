"""Hook the stream engine into a running ComfyUI server: registry, routes, queue throttle, shutdown.

Kept apart from ``extension.py`` (which subclasses ``comfy_api``'s ``ComfyExtension``) so the wiring
is unit-tested with a fake server. ComfyUI freezes its route table after loading custom nodes; both
``register_routes`` (from ``comfy_entrypoint``) and ``load`` (from the extension's ``on_load``, or
``get_node_list`` on hosts that never call ``on_load``) run while custom nodes load.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..routes.media_io import MediaIORoutes
from ..routes.preview import PreviewRoutes
from ..routes.security import HostAllowlist
from ..routes.settings import TrickleSettings
from ..routes.stream_lifecycle import StreamLifecycleRoutes
from ..routes.streams import register_stream_routes
from ..streams.context import FramePreparer
from ..streams.registry import StreamRegistry
from .frame_cache import install_frame_cache_release
from .frame_log import quiet_frame_prompt_logs
from .frame_messages import skip_unheard_frame_messages
from .livepeer_wiring import LivepeerWiring
from .on_prompt import install_keepalive_handler
from .prompt_runner import ComfyPromptRunner
from .queue_updates import coalesce_queue_updates
from .queue_view import hide_frame_prompts_from_people
from .validation import HostValidation, WorkflowValidator

logger = logging.getLogger(__name__)


class HostWiring:
    """The process's one ``StreamRegistry`` on ``server`` (``PromptServer.instance`` in ComfyUI).

    ``server`` needs ``routes``, ``app``, ``loop``, ``send_sync``, ``queue_updated``, ``number`` and
    ``prompt_queue``.
    """

    def __init__(
        self,
        server: Any,
        settings: TrickleSettings,
        validation: HostValidation,
        *,
        prepare_frame: FramePreparer | None = None,
        node_classes: Mapping[str, Any] | None = None,
    ) -> None:
        self.server = server
        self._node_classes = node_classes  # nodes.NODE_CLASS_MAPPINGS (the on-prompt handler's filter)
        self.settings = settings
        self.registry = StreamRegistry(
            ComfyPromptRunner(server, WorkflowValidator(validation)),
            max_streams=settings.limits.max_streams,
            notifier=lambda event, payload: server.send_sync(event, payload),
            prepare_frame=prepare_frame,
            address_check=HostAllowlist(settings.allowed_hosts).address_allowed,
            # a token protects streams: a prompt queued by hand must not read their frames (issue 13.2)
            newest_frame_reads=not settings.token,
        )
        self._preview_routes = PreviewRoutes(self.registry, settings)
        self.livepeer = LivepeerWiring(server, self.registry, settings)
        self._routes_registered = False
        self._loaded = False

    def register_routes(self) -> None:
        """Add our HTTP routes to the server's table (must run before ComfyUI freezes it). Idempotent."""
        if self._routes_registered:
            return
        self._routes_registered = True
        register_stream_routes(self.server.routes, self.registry, self.settings, self.livepeer.start_hooks)
        self._preview_routes.setup_routes(self.server.routes)
        self.livepeer.routes.setup_routes(self.server.routes)
        MediaIORoutes(self.registry, self.settings).setup_routes(self.server.routes)
        StreamLifecycleRoutes(self.registry, self.settings).setup_routes(self.server.routes)
        if self.settings.dev_relay and self.settings.token:
            # The relay cannot require the token (trickle peers send none), so a protected server has none.
            logger.warning(
                "comfy-trickle: dev relay and test source are OFF because COMFY_TRICKLE_TOKEN is set "
                "(the relay cannot check a token); use an external trickle server"
            )
        elif self.settings.dev_relay:
            from ..dev.routes import DevRoutes  # dev-only code loads only when the dev relay is on

            dev_routes = DevRoutes(self.settings)
            dev_routes.setup_routes(self.server.routes)
            dev_routes.attach_lifecycle(self.server.app)
        logger.info("comfy-trickle: routes registered, up to %d streams", self.settings.limits.max_streams)

    def load(self) -> None:
        """Throttle the queue broadcasts, skip frame messages nobody hears, keep frame prompts out of the
        log, add the cache keep-alive on-prompt handler, release each frame's cache entries after its
        prompt, and stop every stream at shutdown. Idempotent."""
        if self._loaded:
            return
        self._loaded = True
        coalesce_queue_updates(self.server)  # a stream's per-frame prompts must not flood every browser
        skip_unheard_frame_messages(self.server)  # nor wake the event loop for messages nobody hears
        hide_frame_prompts_from_people(self.server)  # nor show in a person's queue, jobs and history
        quiet_frame_prompt_logs(self.server)  # nor log "Prompt executed" once per frame
        if self._node_classes is not None:  # user prompts keep streams' cached nodes, and the reverse
            install_keepalive_handler(self.server, self.registry.keepalive, self._node_classes)
        # a frame's own results leave ComfyUI's LRU / RAM-pressure cache once its prompt is done
        install_frame_cache_release(self.server)
        self.server.app.on_shutdown.append(self._stop_streams)
        self.livepeer.attach(self.server.app)

    async def _stop_streams(self, _app: Any) -> None:
        await self.registry.stop_all()
        await self.livepeer.close()  # final status events, registration task
        await self._preview_routes.close()  # its JPEG encoder thread
