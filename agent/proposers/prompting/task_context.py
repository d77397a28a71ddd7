"""What a kernel engineer looks at before the first line of a kernel, given to the model once
per lineage: the machine, what a solution may build kernels with here, where the
reference's time goes (a per-op profile), how far from the bound it is, and one short valid
example solution for the device.

The profile runs the task in a child process with limits and a timeout (the task file is
trusted, but it stays out of kopt's process) and is cached per task source, device and machine.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kopt.agent.proposers.prompting.feedback import format_profile
from kopt.agent.proposers.prompting.prompt_examples import EXAMPLES
from kopt.sandboxes.jail_setup import namespace_prefix
from kopt.sandboxes.local import scrubbed_env
from kopt.sandboxes.machine import fingerprint, memory_bandwidth_gbs
from kopt.sandboxes.native import cache_root
from kopt.sandboxes.worker_limits import Limits, _limit_self

SIMD = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "neon",
        "asimd", "sve")
PROFILE_TIMEOUT_S = 180


@functools.lru_cache(maxsize=1)
def simd_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    have = set(line.split(":", 1)[1].split())
                    return [s for s in SIMD if s in have]
    except OSError:
        pass
    return []


def hardware(device: str, gpu: dict | None = None) -> str:
    fp = fingerprint()
    lines = [f"CPU: {fp['cpu']}, {fp['cores']} cores available to the solution, SIMD: "
             f"{', '.join(simd_flags()) or 'unknown'}"]
    try:
        lines.append(f"memory bandwidth: {memory_bandwidth_gbs():.1f} GB/s (measured copy)")
    except Exception:  # noqa: BLE001 - a missing line, never a failed prompt
        pass
    if device == "cuda" and gpu:
        lines.append(f"GPU: {gpu['name']}, compute capability {gpu['cc']}, {gpu['sms']} SMs, "
                     f"{gpu['memory_gb']} GB")
    return "\n".join(lines)


def technologies(device: str) -> str:
    """What a solution can build kernels with on this machine, for this device."""
    gxx = shutil.which(os.environ.get("CXX", "g++"))
    have = lambda name: importlib.util.find_spec(name) is not None  # noqa: E731
    out = []
    if gxx:
        out.append("C++ through `from kopt.sandboxes.native import load_cpp` (g++ -O3 -march=native -fopenmp, "
                   "a ctypes library; pass tensor.data_ptr())")
        out.append("`torch.utils.cpp_extension.load_inline` (C++ with the torch API; OpenMP via "
                   "extra_cflags=['-O3', '-fopenmp'])")
    if device == "cuda":
        if shutil.which("nvcc") or os.environ.get("CUDA_HOME"):
            out.append("CUDA kernels through load_inline(cuda_sources=...)")
        if have("triton"):
            out.append("Triton (@triton.jit)")
        if have("cupy"):
            out.append("CuPy RawKernel")
    elif have("triton"):
        out.append("Triton runs only interpreted on a CPU: its timing is not verified, prefer C++")
    return "\n".join(f"- {t}" for t in out) or "- plain PyTorch only (no C++ compiler found)"


def _cache_file(task_source: str, device: str) -> Path:
    fp = fingerprint()
    key = hashlib.sha256("\0".join([task_source, device, fp["cpu"], fp.get("torch", ""), fp.get("gpu", ""),
                                    str(fp["cores"])]).encode()).hexdigest()[:20]
    return cache_root() / "profiles" / f"{key}.json"


def reference_profile(task_path: str | Path, device: str = "cpu", timeout: float = PROFILE_TIMEOUT_S) -> dict:
    """{"ops": [...], "wall_ms", "io_bytes", "gemm_share", "gpu"?} or {"error": why}."""
    task_path = Path(task_path)
    source = task_path.read_text()
    cache = _cache_file(source, device)
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    info = _run_profiler(task_path, device, timeout)
    if "error" not in info:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(info))
        except OSError:
            pass
    return info


def _run_profiler(task_path: Path, device: str, timeout: float) -> dict:
    # CUDA maps far more address space than it uses: no address-space cap on a GPU (as the evaluator)
    limits = Limits(wall_s=timeout, memory_mb=16384 if device != "cuda" else 1 << 40)
    with tempfile.TemporaryDirectory(prefix="kopt-profile-") as home:
        cmd = [*namespace_prefix(), sys.executable, "-m", "kopt.sandboxes.profile_worker", str(task_path), device]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=home,
                               env=scrubbed_env(home),
                               stdin=subprocess.DEVNULL, start_new_session=True,
                               preexec_fn=lambda: _limit_self(limits))
        except subprocess.TimeoutExpired:
            return {"error": f"the reference took over {timeout:.0f}s to profile"}
    lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"profiling failed: {tail[:200]}"}
    return json.loads(lines[-1])


def describe_profile(info: dict, bandwidth_gbs: float | None = None) -> str:
    if "error" in info:
        return f"(not available: {info['error']})"
    lines = [f"one call takes {info['wall_ms']:.3f} ms (inputs {info.get('shapes')}, "
             f"{info.get('threads', '?')} threads); self time per op:", format_profile(info["ops"])]
    share = info.get("gemm_share") or 0
    if share > 0.02:
        lines.append(f"bound: GEMM/conv ops take {100 * share:.0f}% of the time; if everything else were free "
                     f"the forward would be {1 / share:.2f}x faster")
    if bandwidth_gbs and info.get("io_bytes"):
        floor = info["io_bytes"] / (bandwidth_gbs * 1e9) * 1000
        lines.append(f"bound: reading the inputs and writing the outputs once takes at least {floor:.3f} ms at "
                     f"the measured bandwidth (the reference takes {info['wall_ms'] / max(floor, 1e-9):.1f}x that)")
    return "\n".join(lines)


def example_solution(device: str) -> str:
    return EXAMPLES["cuda" if device == "cuda" else "cpu"]


def machine_sections(device: str = "cpu") -> dict[str, str]:
    """The sections that need no run of the task (hardware, technologies, example): for prompts
    built in bulk, e.g. the first step on every task of a training suite."""
    return {"hardware": hardware(device), "technologies": technologies(device),
            "example": f"```python\n{example_solution(device)}```"}


@functools.lru_cache(maxsize=32)
def _kernelbench_context(task_path: str, device: str, mtime: float) -> dict[str, str]:
    info = reference_profile(task_path, device)
    bandwidth = None
    if device != "cuda":
        try:
            bandwidth = memory_bandwidth_gbs()
        except Exception:  # noqa: BLE001
            pass
    return {**machine_sections(device), "hardware": hardware(device, info.get("gpu")),
            "profile": describe_profile(info, bandwidth)}


def task_context(target) -> dict[str, str]:
    """Named sections (hardware, technologies, profile, example) for a target; a profiled
    target (a KernelBench task) gets all of them, other kinds the hardware only."""
    if target is None:
        return {}
    if not target.profiled:
        return {"hardware": hardware("cpu")}
    device = getattr(getattr(target, "eval_cfg", None), "device", "cpu")
    path = Path(target.path)
    return dict(_kernelbench_context(str(path), device, path.stat().st_mtime))


TITLES = {"hardware": "Machine", "technologies": "What a solution can use here",
          "profile": "Where the reference's time goes (torch.profiler on the target device)",
          "example": "A short valid solution for this device (for a task computing torch.relu(x); the pattern, "
                     "not the operation, is the point)"}


def render(sections: dict[str, str]) -> str:
    return "\n\n".join(f"{TITLES.get(k, k)}:\n{v}" for k, v in sections.items() if v)
