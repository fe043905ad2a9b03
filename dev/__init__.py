"""Development conveniences served by ComfyUI only while the dev relay is on (``COMFY_TRICKLE_DEV_RELAY``,
default 1): the trickle relay mounted under ``/trickle/relay/`` and the synthetic test source.

Nothing outside this package imports it; ``host/wiring.py`` imports ``dev.routes.DevRoutes`` only when the
setting is on, so a server with the dev relay off never loads this code.
"""
