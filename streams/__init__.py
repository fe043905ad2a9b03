"""Stream sessions: subscribe -> decode -> ComfyUI executor -> encode -> publish, one per stream.

Talks to ComfyUI only through the small executor interface in ``streams.executor``; the
ComfyUI-specific implementation lives in ``host``.
"""
