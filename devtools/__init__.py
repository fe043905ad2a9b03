"""Developer tools of the checkout: the demo, the one ComfyUI launcher (with this pack) that tests, the demo
and the benchmarks share, and a live stream driven from outside (``stream_harness``).

Not part of the pack users install: ``.comfyignore`` keeps this folder out of the registry archive and
no module of the pack imports it (tests/test_packaging.py checks both). Import it as
``comfy_trickle.devtools`` with ``scripts/env.sh`` sourced.
"""
