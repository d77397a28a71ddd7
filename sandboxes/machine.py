"""A short fingerprint of the machine an evaluation ran on (stored with every result)."""
from __future__ import annotations

import functools
import os
import platform

from kopt.sandboxes.native import cache_root


@functools.lru_cache(maxsize=1)
def fingerprint() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "os": platform.platform(terse=True)}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def memory_bandwidth_gbs() -> float:
    """Sustained copy bandwidth of this machine's memory in GB/s (read + write), measured
    once with a 256 MiB copy and cached per CPU model."""
    import json
    import time

    import numpy as np


    path = cache_root() / "machine.json"
    key = fingerprint()["cpu"]
    try:
        cached = json.loads(path.read_text())
        if cached.get("cpu") == key and cached.get("bandwidth_gbs"):
            return float(cached["bandwidth_gbs"])
    except (OSError, ValueError):
        pass
    src = np.ones(32 << 20, dtype=np.float64)  # 256 MiB
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    gbs = 2 * src.nbytes / best / 1e9
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"cpu": key, "bandwidth_gbs": round(gbs, 2)}))
    except OSError:
        pass
    return gbs
