"""Peers that play go-livepeer's roles against a real ComfyUI worker: the gateway (``gateway.py``) and the
BYOC orchestrator's registration endpoint (``orchestrator.py``)."""
