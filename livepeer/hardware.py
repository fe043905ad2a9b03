"""``GET /hardware/info`` and ``/hardware/stats`` in ai-runner's shape
(``livepeer/ai-runner:runner/src/runner/routes/hardware.py`` ``HardwareInformation``/``HardwareStats``,
``runner/src/runner/utils/hardware.py`` ``GPUComputeInfo {id, name, memory_total, memory_free, major,
minor}``, ``GPUUtilizationInfo {id, name, memory_total, memory_free, utilization_compute,
utilization_memory}``; memory in bytes). Read with ``nvidia-smi`` when it exists; a CPU-only machine
answers honestly with an empty ``gpu_info`` (and ``cpu_count``, an extra key of ours).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from typing import Any

logger = logging.getLogger(__name__)

QUERY = "index,uuid,name,memory.total,memory.free,compute_cap,utilization.gpu,utilization.memory"
TIMEOUT_S = 5.0
MIB = 1024 * 1024


async def gpu_rows() -> list[dict[str, Any]]:
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        process = await asyncio.create_subprocess_exec(
            binary, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    except Exception as err:  # also a timeout: answer without GPUs rather than fail
        logger.warning("hardware: nvidia-smi failed: %r", err)
        return []
    rows = []
    for line in out.decode(errors="replace").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 8:
            continue
        index, uuid, name, total, free, cap, util_gpu, util_mem = parts
        major, _, minor = cap.partition(".")
        rows.append({"index": index, "id": uuid, "name": name, "memory_total": _int(total) * MIB,
                     "memory_free": _int(free) * MIB, "major": _int(major), "minor": _int(minor),
                     "utilization_compute": _int(util_gpu), "utilization_memory": _int(util_mem)})
    return rows


def _int(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return 0


async def hardware_info(pipeline: str, model_id: str) -> dict[str, Any]:
    keys = ("id", "name", "memory_total", "memory_free", "major", "minor")
    rows = await gpu_rows()
    return {"pipeline": pipeline, "model_id": model_id, "cpu_count": os.cpu_count(),
            "gpu_info": {r["index"]: {k: r[k] for k in keys} for r in rows}}


async def hardware_stats(pipeline: str, model_id: str) -> dict[str, Any]:
    keys = ("id", "name", "memory_total", "memory_free", "utilization_compute", "utilization_memory")
    rows = await gpu_rows()
    return {"pipeline": pipeline, "model_id": model_id,
            "gpu_stats": {r["index"]: {k: r[k] for k in keys} for r in rows}}
