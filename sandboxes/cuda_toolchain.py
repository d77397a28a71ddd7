"""The CUDA toolchain a compile-only check uses: which nvcc, its version, the target
architecture, the torch and Python headers, and stubs for the headers of CUDA libraries a
minimal toolkit lacks (a build that fails only for those is this machine's gap, not the
solution's error: `environment_gap`).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from kopt.sandboxes.native import cache_root

DEFAULT_ARCH = "sm_90"  # permissive for sm_80..sm_90 code; KOPT_CUDA_ARCH names the real target


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
