"""Compile-only checks of the CUDA a solution carries, with `nvcc` and no GPU.

The sources are read out of the solution's syntax tree, never by running it: the strings
passed to `load_inline(cuda_sources=...)`, to CuPy's `RawKernel`/`RawModule`, and any other
module-level string holding a `__global__` kernel (`.cu` text written out at run time).
Each one is built to a cubin (front end for host and device code, then ptxas) inside the
local sandbox, so an `#include` of a secret or a compiler that hangs is contained like any
other untrusted run. Results -- errors included -- are cached by source, flags, target
architecture and toolchain, so an unchanged candidate is never compiled twice.
"""
from __future__ import annotations

import ast
import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kopt.agent.errors import EnvironmentMissing
from kopt.sandboxes.local import Limits, start_worker
from kopt.sandboxes.native import cache_root

DEFAULT_ARCH = "sm_90"  # permissive for sm_80..sm_90 code; KOPT_CUDA_ARCH names the real target
# What torch.utils.cpp_extension passes nvcc for every extension (COMMON_NVCC_FLAGS).
TORCH_NVCC_FLAGS = ("-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__",
                    "--expt-relaxed-constexpr")
TORCH_PRELUDE = "#include <torch/types.h>\n#include <cuda.h>\n#include <cuda_runtime.h>\n"
# Flags a solution may pass through: optimisation and code-generation choices only, never
# anything that names an output, an input file or a host tool.
_SAFE_FLAG = re.compile(r"^(-O[0-3s]?|-{1,2}use_fast_math|-D[A-Za-z_][\w=.,+-]*|-U\w+|--expt-[\w-]+|-lineinfo"
                        r"|-std=c\+\+\d\d|--extended-lambda|-maxrregcount=?\d+|--maxrregcount=?\d+"
                        r"|-Xptxas=?-?[\w=,.-]+|--ptxas-options=[\w=,.-]+|--ftz=\w+|--prec-div=\w+"
                        r"|--prec-sqrt=\w+|--fmad=\w+|-restrict|--restrict|-w|-G0)$")


@dataclass
class CudaUnit:
    """One translation unit as the solution's runtime would compile it."""

    origin: str  # where it came from, as the model should read it: "cuda_sources", "RawKernel(RELU_SRC)"
    kind: str  # load_inline | cupy | text
    source: str
    flags: tuple[str, ...] = ()
    torch_prelude: bool = False
    extension_name: str = ""
    kernel_names: tuple[str, ...] = ()  # CuPy looks these up by name in the built module
    ignored_flags: tuple[str, ...] = ()


@dataclass
class Extraction:
    units: list[CudaUnit] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # source-level errors found without a compiler
    unresolved: list[str] = field(default_factory=list)  # CUDA built at run time: cannot be checked here


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


# -- reading the sources out of the syntax tree ---------------------------------------------

class _Strings:
    """Resolves an expression to the string (or list of strings) it certainly is, else None."""

    def __init__(self, tree: ast.Module):
        self.names: dict[str, ast.expr] = dict(self._assignments(tree.body))
        # names assigned inside functions or classes too, where a name is assigned only once
        inner: dict[str, list[ast.expr]] = {}
        for scope in ast.walk(tree):
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for name, value in self._assignments(scope.body):
                    inner.setdefault(name, []).append(value)
        for name, values in inner.items():
            if name not in self.names and len(values) == 1:
                self.names[name] = values[0]

    @staticmethod
    def _assignments(body: list[ast.stmt]):
        for node in body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                yield node.targets[0].id, node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                yield node.target.id, node.value

    def value(self, node: ast.expr | None, depth: int = 0):
        if node is None or depth > 20:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool)):
            return node.value
        if isinstance(node, ast.Name) and node.id in self.names:
            return self.value(self.names[node.id], depth + 1)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.value(e, depth + 1) for e in node.elts]
            return None if any(i is None for i in items) else items
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            a, b = self.value(node.left, depth + 1), self.value(node.right, depth + 1)
            if isinstance(a, str) and isinstance(b, str) or isinstance(a, list) and isinstance(b, list):
                return a + b
            return None
        if isinstance(node, ast.JoinedStr):
            parts = []
            for v in node.values:
                got = self.value(v.value if isinstance(v, ast.FormattedValue) else v, depth + 1)
                if got is None or isinstance(v, ast.FormattedValue) and v.format_spec is not None:
                    return None
                parts.append(str(got))
            return "".join(parts)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and len(node.args) == 1:
            inner = self.value(node.args[0], depth + 1)
            owner = self.value(node.func.value, depth + 1)
            if node.func.attr == "dedent" and isinstance(inner, str):
                import textwrap

                return textwrap.dedent(inner)
            if node.func.attr == "join" and isinstance(owner, str) and isinstance(inner, list):
                return owner.join(str(i) for i in inner)
        return None

    def text(self, node: ast.expr | None) -> str | None:
        v = self.value(node)
        if isinstance(v, list) and all(isinstance(i, str) for i in v):
            return "\n".join(v)
        return v if isinstance(v, str) else None


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _arg(node: ast.Call, pos: int, name: str) -> ast.expr | None:
    for kw in node.keywords:
        if kw.arg == name:
            return kw.value
    return node.args[pos] if len(node.args) > pos else None


def _label(node: ast.expr | None, fallback: str) -> str:
    return node.id if isinstance(node, ast.Name) else fallback


def _split_flags(values) -> tuple[tuple[str, ...], tuple[str, ...]]:
    flags = [f for v in (values or []) for f in str(v).split() if f]
    return tuple(f for f in flags if _SAFE_FLAG.match(f)), tuple(f for f in flags if not _SAFE_FLAG.match(f))


def _defined(name: str, text: str) -> bool:
    """Whether C++ text defines function `name`: a body follows its parameter list (after
    qualifiers or a trailing return type, if any)."""
    return re.search(rf"\b{re.escape(name)}\s*\([^;{{}}]*\)[^;{{}}()]*\{{", text) is not None


def extract_cuda(source: str) -> Extraction:
    """Every CUDA translation unit the solution would compile, read statically."""
    out = Extraction()
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        out.problems.append(f"syntax error line {e.lineno}: {e.msg}")
        return out
    strings = _Strings(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        if name == "load_inline":
            _from_load_inline(node, strings, out)
        elif name in ("RawKernel", "RawModule"):
            _from_cupy(node, name, strings, out)
    # any other module-level string holding a kernel (`.cu` text written out and built at run
    # time) that is not already part of a unit found above
    for var, value in strings.names.items():
        text = strings.text(value)
        if text and "__global__" in text and not any(text in u.source for u in out.units):
            out.units.append(CudaUnit(origin=var, kind="text", source=text, torch_prelude=False))
    return out


def _from_load_inline(node: ast.Call, strings: _Strings, out: Extraction) -> None:
    cuda_node, cpp_node = _arg(node, 2, "cuda_sources"), _arg(node, 1, "cpp_sources")
    if cuda_node is None:
        return
    cuda = strings.text(cuda_node)
    where = f"line {node.lineno}"
    if cuda is None:
        out.unresolved.append(f"load_inline at {where}: cuda_sources is built at run time")
        return
    cpp = strings.text(cpp_node) or ""
    functions = strings.value(_arg(node, 3, "functions")) or []
    if isinstance(functions, str):
        functions = [functions]
    if isinstance(functions, dict):
        functions = list(functions)
    for fn in functions:
        if isinstance(fn, str) and not _defined(fn, cuda + "\n" + cpp):
            out.problems.append(f"load_inline at {where}: functions=[{fn!r}] but neither cpp_sources nor "
                                f"cuda_sources defines {fn}() (the binding would not link)")
    flags, ignored = _split_flags(strings.value(_arg(node, 99, "extra_cuda_cflags")))
    name = strings.value(_arg(node, 0, "name"))
    no_headers = strings.value(_arg(node, 99, "no_implicit_headers")) is True
    out.units.append(CudaUnit(origin=f"cuda_sources of load_inline({name})" if name else "cuda_sources",
                              kind="load_inline", source=cuda, flags=flags, torch_prelude=not no_headers,
                              extension_name=str(name or "kopt_ext"), ignored_flags=ignored))


def _from_cupy(node: ast.Call, kind: str, strings: _Strings, out: Extraction) -> None:
    code_node = _arg(node, 0, "code")
    code = strings.text(code_node)
    where = f"{kind}({_label(code_node, 'line ' + str(node.lineno))})"
    if code is None:
        out.unresolved.append(f"{kind} at line {node.lineno}: its code is built at run time")
        return
    names: tuple[str, ...] = ()
    if kind == "RawKernel":
        kname = strings.value(_arg(node, 1, "name"))
        names = (kname,) if isinstance(kname, str) else ()
    opts = strings.value(_arg(node, 2 if kind == "RawKernel" else 1, "options"))
    flags, ignored = _split_flags([opts] if isinstance(opts, str) else opts)
    if any(u.source == code and u.kind == "cupy" for u in out.units):
        unit = next(u for u in out.units if u.source == code and u.kind == "cupy")
        unit.kernel_names = tuple(dict.fromkeys(unit.kernel_names + names))
        return
    out.units.append(CudaUnit(origin=where, kind="cupy", source=code, flags=flags, kernel_names=names,
                              ignored_flags=ignored))


# -- the toolchain ------------------------------------------------------------------------------

def find_nvcc() -> str | None:
    """`KOPT_NVCC`, else CUDA_HOME/CUDA_PATH, else PATH, else /usr/local/cuda."""
    if "KOPT_NVCC" in os.environ:
        return os.environ["KOPT_NVCC"] if Path(os.environ["KOPT_NVCC"]).is_file() else None
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if home and (Path(home) / "bin" / "nvcc").exists():
            return str(Path(home) / "bin" / "nvcc")
    return shutil.which("nvcc") or (str(Path("/usr/local/cuda/bin/nvcc"))
                                    if Path("/usr/local/cuda/bin/nvcc").exists() else None)


@functools.cache
def nvcc_version(nvcc: str) -> str:
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "nvcc ?"
    release = re.search(r"release [\d.]+, V[\d.]+", out)
    return release.group(0) if release else (out.strip().splitlines() or ["nvcc ?"])[-1]


@functools.cache
def torch_include_dirs() -> tuple[str, ...]:
    """Torch's and Python's headers, found without importing torch (slow)."""
    import sysconfig

    spec = importlib.util.find_spec("torch")
    dirs = []
    if spec and spec.origin:
        inc = Path(spec.origin).parent / "include"
        dirs += [str(inc), str(inc / "torch" / "csrc" / "api" / "include")]
    dirs.append(sysconfig.get_paths()["include"])
    return tuple(dirs)


def target_arch() -> str:
    """`KOPT_CUDA_ARCH` (e.g. sm_80 or 80), else this machine's GPU, else sm_90."""
    want = os.environ.get("KOPT_CUDA_ARCH", "").strip()
    if want:
        return want if want.startswith(("sm_", "compute_")) else "sm_" + want.replace(".", "")
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        try:
            if torch.cuda.is_available():
                major, minor = torch.cuda.get_device_capability()
                return f"sm_{major}{minor}"
        except Exception:  # noqa: BLE001 - no usable GPU: the default
            pass
    return DEFAULT_ARCH


# Declarations torch's CUDA headers need from CUDA libraries a minimal toolkit may lack
# (ATen/cuda/CUDAContext.h includes cuBLAS, cuSPARSE and cuSOLVER headers for handle types).
# Written only where the real header is missing, so nothing real is shadowed; a solution
# that calls into one of these libraries then fails on a stubbed name, which is reported as
# "not checkable here", never as the solution's compile error.
_STUB_HEADERS = {
    "cublas_v2.h": "typedef struct cublasContext* cublasHandle_t;\n"
                   "typedef enum { CUBLAS_STATUS_SUCCESS = 0 } cublasStatus_t;\n",
    "cublasLt.h": "#include <cublas_v2.h>\ntypedef struct cublasLtContext* cublasLtHandle_t;\n",
    "cusparse.h": "typedef struct cusparseContext* cusparseHandle_t;\n"
                  "typedef enum { CUSPARSE_STATUS_SUCCESS = 0 } cusparseStatus_t;\n"
                  "extern \"C\" const char* cusparseGetErrorString(cusparseStatus_t status);\n",
    "cusolver_common.h": "typedef enum { CUSOLVER_STATUS_SUCCESS = 0, CUSOLVER_STATUS_INVALID_VALUE = 3 }"
                         " cusolverStatus_t;\n",
    "cusolverDn.h": "#include <cusolver_common.h>\ntypedef struct cusolverDnContext* cusolverDnHandle_t;\n",
}
# Headers a CUDA build of torch generates and its CPU wheel does not ship.
_TORCH_GENERATED = {
    "c10/cuda/impl/cuda_cmake_macros.h": "#define C10_CUDA_BUILD_SHARED_LIBS\n",
    "ATen/cuda/CUDAConfig.h": "#define AT_CUDNN_ENABLED() 0\n#define AT_CUSPARSELT_ENABLED() 0\n"
                              "#define AT_HIPSPARSELT_ENABLED() 0\n#define AT_ROCM_ENABLED() 0\n"
                              "#define AT_MAGMA_ENABLED() 0\n#define NVCC_FLAGS_EXTRA \"\"\n",
}
STUBBED_PREFIXES = ("cublas", "cusparse", "cusolver", "CUBLAS", "CUSPARSE", "CUSOLVER")


def stub_dir(nvcc: str) -> str | None:
    """A folder of stub headers for the ones this toolkit lacks, or None when it has them all."""
    return _stub_dir(nvcc, str(cache_root()))


@functools.cache
def _stub_dir(nvcc: str, cache: str) -> str | None:
    root = Path(nvcc).resolve().parent.parent
    includes = [root / "include", *root.glob("targets/*/include")]
    missing = {h: body for h, body in _STUB_HEADERS.items() if not any((d / h).exists() for d in includes)}
    torch_inc = torch_include_dirs()[0] if len(torch_include_dirs()) > 1 else None
    if torch_inc:
        missing.update({h: body for h, body in _TORCH_GENERATED.items() if not (Path(torch_inc) / h).exists()})
    if not missing:
        return None
    folder = Path(cache) / "cuda" / ("stubs-" + hashlib.sha256(json.dumps(missing, sort_keys=True).encode())
                                      .hexdigest()[:12])
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in missing.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"#pragma once\n// kopt compile-only stub: this CUDA toolkit has no {name}\n"
                                   + body)
    return str(folder)


def environment_gap(error: str) -> str:
    """Why a failed build says nothing about the solution, or "": a header of a CUDA library
    this machine lacks, or a call into a library only stubbed here."""
    first = next((ln for ln in error.splitlines() if re.search(r"\berror\b", ln)), "")
    missing = re.search(r"fatal error: ([\w./+-]+): No such file", first) or \
        re.search(r'cannot open source file "([\w./+-]+)"', first)
    if missing and not missing.group(1).startswith(("torch/", "ATen/", "c10/", "pybind11/")):
        return f"header {missing.group(1)} is not installed on this machine"
    undefined = re.search(r'identifier "(\w+)" is undefined', first)
    if undefined and undefined.group(1).startswith(STUBBED_PREFIXES):
        return f"{undefined.group(1)} needs library headers this CUDA toolkit lacks"
    return ""


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
    import shlex


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
