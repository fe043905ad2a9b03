"""Deterministic segment bodies shared by the interop tests and the peer scripts (stdlib only)."""

from __future__ import annotations

import hashlib


def segment_payload(seq: int, size: int) -> bytes:
    """``size`` bytes that differ for every seq and offset, so any loss, reorder or mix-up shows."""
    block = hashlib.sha256(f"segment {seq}".encode()).digest()
    repeated = (block * (size // len(block) + 1))[:size]
    return bytes((byte + offset // 4096) % 256 for offset, byte in enumerate(repeated))
