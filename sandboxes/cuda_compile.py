"""Compile-only checks of the CUDA a solution carries, with `nvcc` and no GPU.

The sources are read out of the solution's syntax tree, never by running it
(cuda_sources.py), and built with the toolchain cuda_toolchain.py finds. Each one is built
to a cubin (front end for host and device code, then ptxas) inside the local sandbox, so an
`#include` of a secret or a compiler that hangs is contained like any other untrusted run.
Results -- errors included -- are cached by source, flags, target architecture and
toolchain, so an unchanged candidate is never compiled twice.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kopt.agent.errors import EnvironmentMissing
from kopt.sandboxes.cuda_sources import CudaUnit, extract_cuda
from kopt.sandboxes.cuda_toolchain import (
    environment_gap,
    find_nvcc,
    nvcc_version,
    stub_dir,
    target_arch,
    torch_include_dirs,
)
from kopt.sandboxes.local import Limits, start_worker
from kopt.sandboxes.native import cache_root

# What torch.utils.cpp_extension passes nvcc for every extension (COMMON_NVCC_FLAGS).
TORCH_NVCC_FLAGS = ("-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__",
                    "--expt-relaxed-constexpr")
TORCH_PRELUDE = "#include <torch/types.h>\n#include <cuda.h>\n#include <cuda_runtime.h>\n"


@dataclass
class UnitResult:
    origin: str
    ok: bool
    error: str = ""
    seconds: float = 0.0
    cached: bool = False
    gap: str = ""  # failed for a reason of this machine's (see environment_gap), not the solution's


@dataclass
class CompileReport:
    arch: str
    toolchain: str
    units: list[UnitResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No error that is the solution's (gaps of this machine's toolkit are not)."""
        return not self.problems and all(u.ok or u.gap for u in self.units)

    @property
    def gaps(self) -> list[str]:
        return [f"{u.origin}: {u.gap}" for u in self.units if u.gap]

    def first_error(self) -> str:
        """The one line a verdict's `reason` carries."""
        if self.problems:
            return self.problems[0]
        for u in self.units:
            if not u.ok and not u.gap:
                line = next((ln for ln in u.error.splitlines() if "error" in ln.lower()), u.error.splitlines()[0]
                            if u.error else "failed")
                return f"nvcc: {line.strip()}"[:600]
        return ""

    def as_checks(self) -> dict:
        out = {"arch": self.arch, "toolchain": self.toolchain,
               "units": [{"origin": u.origin, "ok": u.ok, "seconds": round(u.seconds, 2), "cached": u.cached,
                          **({"gap": u.gap} if u.gap else {})} for u in self.units]}
        errors = "\n".join(f"[{u.origin}]\n{u.error}" for u in self.units if not u.ok)
        if errors:
            out["compiler_output"] = errors[:4000]
        if self.unresolved:
            out["unresolved"] = self.unresolved
        return out

def nvcc_command(unit: CudaUnit, arch: str, nvcc: str = "nvcc") -> list[str]:
    cmd = [nvcc, "-cubin", f"-arch={arch}", "-std=c++17", "-Wno-deprecated-gpu-targets"]
    if unit.kind != "cupy":
        for d in torch_include_dirs():
            cmd += ["-isystem", d]
        stubs = stub_dir(nvcc) if os.path.isabs(nvcc) else None
        if stubs:
            cmd += ["-isystem", stubs]  # only headers the toolkit lacks: nothing real is shadowed
    if unit.kind == "load_inline":
        cmd += [*TORCH_NVCC_FLAGS, f"-DTORCH_EXTENSION_NAME={unit.extension_name}", "-DTORCH_API_INCLUDE_EXTENSION_H"]
    cmd += list(unit.flags)
    return [*cmd, "-o", "unit.cubin", "unit.cu"]


def unit_text(unit: CudaUnit) -> str:
    """The file nvcc reads; `#line` keeps error line numbers those of the solution's string."""
    prelude = TORCH_PRELUDE if unit.torch_prelude else ""
    return f'{prelude}#line 1 "{unit.origin.split(" ")[0]}"\n{unit.source}\n'


def unit_key(unit: CudaUnit, arch: str, toolchain: str, nvcc: str = "nvcc") -> str:
    h = hashlib.sha256()
    cmd = nvcc_command(unit, arch, nvcc)
    for part in (unit_text(unit), "\0".join(cmd), "\0".join(unit.kernel_names), arch, toolchain):
        h.update(part.encode())
        h.update(b"\0\0")
    return h.hexdigest()[:24]


def trim_nvcc_output(text: str, limit: int = 2000) -> str:
    """Errors with the source line and caret that follow each; build paths dropped."""
    lines = [re.sub(r"\S*/(unit\.cu|kopt-sbx-\w+/)", r"\1", ln.rstrip()) for ln in text.splitlines()]
    keep: list[str] = []
    errors = [i for i, ln in enumerate(lines) if re.search(r"\berror\b|fatal", ln, re.I)]
    for i in errors[:5]:
        keep.extend(ln for ln in lines[i:i + 3] if ln.strip() and not re.search(r"errors? detected", ln))
    out = "\n".join(keep or [ln for ln in lines if ln.strip()][-8:])
    return out[:limit]


# -- building -----------------------------------------------------------------------------------

def compile_unit(unit: CudaUnit, arch: str, nvcc: str, timeout_s: float) -> UnitResult:
    toolchain = nvcc_version(nvcc)
    folder = cache_root() / "cuda" / unit_key(unit, arch, toolchain, nvcc)
    folder.mkdir(parents=True, exist_ok=True)
    result_file = folder / "result.json"
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two evaluations of one candidate build it once
        if result_file.exists():
            saved = json.loads(result_file.read_text())
            return UnitResult(unit.origin, saved["ok"], saved["error"], saved["seconds"], cached=True)
        (folder / "unit.cu").write_text(unit_text(unit))
        t0 = time.perf_counter()
        ok, error = _run_sandboxed(nvcc_command(unit, arch, nvcc), folder, timeout_s)
        if ok and unit.kernel_names:
            missing = _missing_kernels(folder / "unit.cubin", unit.kernel_names)
            if missing:
                ok, error = False, (f"error: kernel {missing[0]!r} not found in the compiled module -- CuPy looks "
                                    f"it up by name: declare it extern \"C\" __global__ (or use name_expressions)")
        seconds = time.perf_counter() - t0
        gap = "" if ok else environment_gap(error)
        # a timeout or a missing header may be the machine's fault: try again next time
        if not error.startswith("timeout") and not gap:
            result_file.write_text(json.dumps({"ok": ok, "error": error, "seconds": seconds}))
        return UnitResult(unit.origin, ok, error, seconds, gap=gap)


def _missing_kernels(cubin: Path, names: tuple[str, ...]) -> list[str]:
    data = cubin.read_bytes() if cubin.exists() else b""
    return [n for n in names if b"\0" + n.encode() + b"\0" not in data]


def _run_sandboxed(cmd: list[str], folder: Path, timeout_s: float) -> tuple[bool, str]:
    """nvcc inside the local sandbox: no network, the host read-only but for this build's
    own cache folder, secrets hidden; its output is kept for the error message."""
    script = f"cd {shlex.quote(str(folder))} && exec {shlex.join(cmd)} 2>&1"
    limits = Limits(wall_s=timeout_s + 5, memory_mb=16384, cache_dir=str(folder), cache_mb=1024)
    worker = start_worker(["/bin/sh", "-c", script, "kopt-nvcc"], limits)
    try:
        rc = worker.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        worker.kill()
        return False, f"timeout: nvcc did not finish within {timeout_s:.0f}s"
    worker.kill()  # collects the output, removes the private work dir
    text = worker.output.text()
    if rc == 0 and (folder / "unit.cubin").exists():
        return True, ""
    return False, trim_nvcc_output(text) or f"nvcc exited with code {rc}"


def compile_cuda(source: str, arch: str | None = None, timeout_s: float = 300.0,
                 jobs: int | None = None) -> CompileReport:
    """Compile every CUDA unit of a solution (in parallel) without a GPU.

    Raises EnvironmentMissing when there is CUDA to compile and no nvcc to compile it with.
    """
    found = extract_cuda(source)
    arch = arch or target_arch()
    nvcc = find_nvcc()
    report = CompileReport(arch=arch, toolchain=nvcc_version(nvcc) if nvcc else "no nvcc",
                           problems=list(found.problems), unresolved=list(found.unresolved))
    if not found.units or found.problems:  # nothing to build, or already an error without building
        return report
    if nvcc is None:
        raise EnvironmentMissing("no nvcc found to compile the solution's CUDA: install the CUDA toolkit "
                                 "or set CUDA_HOME")
    workers = max(1, min(len(found.units), jobs or len(os.sched_getaffinity(0))))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kopt-nvcc") as pool:
        report.units = list(pool.map(lambda u: compile_unit(u, arch, nvcc, timeout_s), found.units))
    return report
