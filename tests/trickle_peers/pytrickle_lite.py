"""Import pytrickle's transport modules without ``pytrickle/__init__`` (which pulls in torch: ~6 s).

The interop tests exercise only the wire protocol (``publisher.py``, ``subscriber.py``, ``base.py``), which
import nothing but asyncio and aiohttp.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def load() -> types.ModuleType:
    """Register a bare ``pytrickle`` package so its submodules import on their own; returns it."""
    spec = importlib.util.find_spec("pytrickle")
    if spec is None or spec.submodule_search_locations is None:
        raise SystemExit("pytrickle is not installed in this python")
    package = types.ModuleType("pytrickle")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["pytrickle"] = package
    return package
