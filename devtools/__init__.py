"""Developer tools of the checkout: the demo and the one launcher of local servers (ComfyUI with this
pack, relay processes) that tests, the demo and the benchmarks share.

Not part of the pack users install: ``.comfyignore`` keeps this folder out of the registry archive and
no module of the pack imports it (tests/test_packaging.py checks both). Import it as
``comfy_trickle.devtools`` with ``scripts/env.sh`` sourced.
"""
