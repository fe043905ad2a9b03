# shellcheck shell=bash
# Environment shared by every script of comfy-trickle (and by developers' shells).
#
# Usage:   source scripts/env.sh          (from the checkout root, or any path to this file)
#
# Afterwards:
#   $COMFY_TRICKLE_PY -m pytest tests/...      runs our tests with the ComfyUI venv's python
#   $COMFY_TRICKLE_PY -c 'import comfy_trickle' works: the checkout is importable as `comfy_trickle`
#   $PYTRICKLE_PY                              python of the pytrickle peer venv (foreign test peer)
#
# Variables (all may be set before sourcing to override the default):
#   COMFY_TRICKLE_CACHE  cache outside the checkout, reused across runs and CI clones
#                        (default: $HOME/.cache/comfy-trickle)
#   COMFY_TRICKLE_COMFYUI  which set-up ComfyUI the demo, tests and benchmarks use: 0.3.75 (default) or
#                        0.33.0 (scripts/setup installs each into the cache; scripts/test runs both unless
#                        this or COMFYUI_DIR/COMFYUI_PYTHON is set)
#   COMFY_TRICKLE_FRONTEND  ComfyUI web frontend to serve instead of the ComfyUI's own: empty (default) or
#                        1.58.1 (scripts/setup installs it into $COMFY_TRICKLE_CACHE/frontend-VERSION when this is
#                        set; ComfyUI then starts with --front-end-root pointing at it; scripts/test runs the
#                        browser tests with it on ComfyUI 0.33.0 after the two whole suites)
#   COMFYUI_DIR          ComfyUI source tree, the folder holding main.py
#                        (default: $COMFY_TRICKLE_CACHE/comfyui-$COMFY_TRICKLE_COMFYUI, made by scripts/setup)
#   COMFYUI_PYTHON       python that runs ComfyUI
#                        (default: $COMFY_TRICKLE_CACHE/venv-comfyui-$COMFY_TRICKLE_COMFYUI/bin/python)
#   COMFY_TRICKLE_PY     python that runs our tests, benchmarks and demo (default: $COMFYUI_PYTHON,
#                        because nodes and tests need the same torch/av/aiohttp as ComfyUI)
#   PYTRICKLE_PY         python of the pytrickle peer venv ($COMFY_TRICKLE_CACHE/venv-pytrickle/bin/python)
#   COMFY_TRICKLE_ROOT   this checkout (set here, not overridable)
#   COMFY_TRICKLE_USER_COMFYUI  1 when COMFYUI_DIR or COMFYUI_PYTHON was given by the user (setup then
#                        leaves ComfyUI alone and only installs the dev lock into COMFY_TRICKLE_PY)
#
# PYTHONPATH gets $COMFY_TRICKLE_CACHE/import-root/<hash of this checkout's path>, holding a symlink
# `comfy_trickle -> <checkout>`.

COMFY_TRICKLE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export COMFY_TRICKLE_ROOT

export COMFY_TRICKLE_CACHE="${COMFY_TRICKLE_CACHE:-$HOME/.cache/comfy-trickle}"
# The ComfyUIs scripts/setup knows how to install; the first is the default.
COMFY_TRICKLE_COMFYUIS="0.3.75 0.33.0"
export COMFY_TRICKLE_COMFYUI="${COMFY_TRICKLE_COMFYUI:-${COMFY_TRICKLE_COMFYUIS%% *}}"
# Frontends scripts/setup can install beside each ComfyUI's own (1.32.9 with 0.3.75, 1.49.6 with 0.33.0).
COMFY_TRICKLE_FRONTENDS="1.58.1"
export COMFY_TRICKLE_FRONTEND="${COMFY_TRICKLE_FRONTEND:-}"
if [ -n "$COMFY_TRICKLE_FRONTEND" ]; then
    case " $COMFY_TRICKLE_FRONTENDS " in
        *" $COMFY_TRICKLE_FRONTEND "*) ;;
        *) echo "COMFY_TRICKLE_FRONTEND=$COMFY_TRICKLE_FRONTEND: choose one of $COMFY_TRICKLE_FRONTENDS or leave it empty" >&2; return 1 ;;
    esac
fi
case " $COMFY_TRICKLE_COMFYUIS " in
    *" $COMFY_TRICKLE_COMFYUI "*) ;;
    *) echo "COMFY_TRICKLE_COMFYUI=$COMFY_TRICKLE_COMFYUI: choose one of $COMFY_TRICKLE_COMFYUIS" >&2; return 1 ;;
esac

if [ -n "${COMFYUI_DIR:-}" ] || [ -n "${COMFYUI_PYTHON:-}" ]; then
    export COMFY_TRICKLE_USER_COMFYUI="${COMFY_TRICKLE_USER_COMFYUI:-1}"
else
    export COMFY_TRICKLE_USER_COMFYUI="${COMFY_TRICKLE_USER_COMFYUI:-0}"
fi

export COMFYUI_DIR="${COMFYUI_DIR:-$COMFY_TRICKLE_CACHE/comfyui-$COMFY_TRICKLE_COMFYUI}"
export COMFYUI_PYTHON="${COMFYUI_PYTHON:-$COMFY_TRICKLE_CACHE/venv-comfyui-$COMFY_TRICKLE_COMFYUI/bin/python}"
export COMFY_TRICKLE_PY="${COMFY_TRICKLE_PY:-$COMFYUI_PYTHON}"
export PYTRICKLE_PY="${PYTRICKLE_PY:-$COMFY_TRICKLE_CACHE/venv-pytrickle/bin/python}"

# `import comfy_trickle` outside ComfyUI: the repo root is the package (docs/ARCHITECTURE.md).
# One folder per checkout (named by a hash of its path), so two checkouts sharing the cache (a developer's
# tree and a CI clone) never import each other's code.
_ct_import_root="$COMFY_TRICKLE_CACHE/import-root/$(printf '%s' "$COMFY_TRICKLE_ROOT" | sha1sum | cut -c1-12)"
mkdir -p "$_ct_import_root"
ln -sfn "$COMFY_TRICKLE_ROOT" "$_ct_import_root/comfy_trickle"
case ":${PYTHONPATH:-}:" in
    *":$_ct_import_root:"*) ;;
    *) export PYTHONPATH="$_ct_import_root${PYTHONPATH:+:$PYTHONPATH}" ;;
esac
unset _ct_import_root
