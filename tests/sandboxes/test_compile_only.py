"""Compile-only checks of CUDA solutions with nvcc on a machine without a GPU.

A broken source is `compile_error` with nvcc's own error line (numbered as in the
solution's string); a clean one is `unverified` (compiled, never counted correct); the
second compile of the same source is a cache hit. The fixtures keep their kernels free of
torch headers so nvcc takes about a second.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kopt.agent.errors import EnvironmentMissing
from kopt.sandboxes.cuda_compile import nvcc_command, unit_text
from kopt.sandboxes.cuda_sources import extract_cuda
from kopt.sandboxes.cuda_toolchain import find_nvcc
from kopt.sandboxes.evaluator import EvalConfig, evaluate

FIX = Path(__file__).parents[1] / "fixtures"
CUDA = FIX / "cuda"
TASK = FIX / "tasks" / "relu.py"

needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="needs nvcc (the CUDA toolkit)")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "compile-only-cache"))


def compile_only(solution: Path, **kw) -> dict:
    return evaluate(TASK, solution, EvalConfig(compile_only=True, **kw))


@needs_nvcc
def test_good_load_inline_source_compiles_and_is_unverified():
    res = compile_only(CUDA / "relu_inline_lean.py")
    assert res["verdict"] == "unverified", res
    assert res["compiled"] is True and res["correct"] is False and res["kernel"] == "cuda"
    assert res["speedup"] is None and "\n" not in res["reason"]
    units = res["checks"]["nvcc"]["units"]
    assert len(units) == 1 and units[0]["ok"] is True


@needs_nvcc
def test_second_compile_is_a_cache_hit():
    first = compile_only(CUDA / "relu_cupy.py")
    second = compile_only(CUDA / "relu_cupy.py")
    assert first["verdict"] == second["verdict"] == "unverified", (first, second)
    assert first["checks"]["nvcc"]["units"][0]["cached"] is False
    assert second["checks"]["nvcc"]["units"][0]["cached"] is True
    assert second["checks"]["eval_s"] < first["checks"]["eval_s"], (first["checks"], second["checks"])


@needs_nvcc
@pytest.mark.parametrize("solution,line,message", [
    ("relu_inline_broken.py", "cuda_sources(6)", 'a value of type "const float *" cannot be used'),
    ("relu_cupy_broken.py", "RawKernel(RELU_SRC)(4)", 'identifier "zero" is undefined'),
])
def test_broken_source_is_compile_error_with_the_nvcc_line(solution, line, message):
    res = compile_only(CUDA / solution)
    assert res["verdict"] == "compile_error", res
    assert res["compiled"] is False and res["correct"] is False
    reason = res["reason"]
    assert "\n" not in reason and len(reason) < 400, reason
    assert reason.startswith(f"nvcc: {line}: error:") and message in reason, reason
    # the model also gets the offending source line and the caret, without build paths
    output = res["checks"]["nvcc"]["compiler_output"]
    assert "^" in output and "/tmp/" not in output and "kopt-sbx" not in output, output


@needs_nvcc
def test_cupy_kernel_name_must_be_in_the_module(tmp_path):
    bad = tmp_path / "wrong_name.py"
    bad.write_text((CUDA / "relu_cupy.py").read_text().replace('"relu_f32",', '"relu",'))
    res = compile_only(bad)
    assert res["verdict"] == "compile_error" and "kernel 'relu' not found" in res["reason"], res


def test_bound_function_without_definition_is_caught_before_nvcc(tmp_path):
    bad = tmp_path / "unbound.py"
    bad.write_text((CUDA / "relu_inline_lean.py").read_text().replace('functions=["relu"]', 'functions=["relu_fwd"]'))
    res = compile_only(bad)
    assert res["verdict"] == "compile_error", res
    assert "relu_fwd" in res["reason"] and "defines" in res["reason"]


@needs_nvcc
def test_cli_compile_only_with_device_cuda_needs_no_gpu():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    exe = Path(sys.executable).with_name("kopt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "kopt.agent.cli.app"]
    p = subprocess.run([*cmd, "eval", str(TASK), str(CUDA / "relu_inline_broken.py"), "--device", "cuda",
                        "--compile-only", "--json"], capture_output=True, text=True, env=env, timeout=300)
    import json

    assert p.returncode == 1, (p.stdout, p.stderr)
    res = json.loads(p.stdout)
    assert res["device"] == "cuda" and res["verdict"] == "compile_error", res


def test_no_nvcc_is_environment_missing(monkeypatch):
    monkeypatch.setenv("KOPT_NVCC", "/nonexistent/nvcc")
    with pytest.raises(EnvironmentMissing, match="nvcc"):
        compile_only(CUDA / "relu_cupy.py")


def test_sources_are_read_without_running_the_solution():
    src = '''
import cupy as cp
from torch.utils.cpp_extension import load_inline
BLOCK = 128
HEAD = "#define BLOCK " + str(BLOCK)
BODY = f"""
#define TILE {BLOCK}
__global__ void k(float* x) {{ x[threadIdx.x] *= 2; }}
"""
KERNEL_TEXT = r"extern \\"C\\" __global__ void raw(float* y) { y[0] = 1; }"
mod = cp.RawModule(code=KERNEL_TEXT, options=("-O3", "--output-file=/etc/passwd"))
ext = load_inline("ext", "void f();", cuda_sources=[BODY, "void f() {}"], functions=["f"],
                  extra_cuda_cflags=["-O2", "-ccbin=/tmp/evil"])
dyn = cp.RawKernel(open("k.cu").read(), "k")
'''
    found = extract_cuda(src)
    by_kind = {u.kind: u for u in found.units}
    assert set(by_kind) == {"cupy", "load_inline"}, found
    inline = by_kind["load_inline"]
    assert "#define TILE 128" in inline.source and "void f() {}" in inline.source
    assert inline.flags == ("-O2",) and inline.ignored_flags == ("-ccbin=/tmp/evil",)
    assert by_kind["cupy"].flags == ("-O3",) and "--output-file=/etc/passwd" in by_kind["cupy"].ignored_flags
    assert any("RawKernel at line 14" in u for u in found.unresolved), found.unresolved
    cmd = nvcc_command(inline, "sm_80")
    assert cmd[-3:] == ["-o", "unit.cubin", "unit.cu"]
    assert not any("evil" in c for c in cmd)
    # load_inline's own prelude, then line numbers that match the solution's string
    text = unit_text(inline)
    assert text.startswith("#include <torch/types.h>") and '#line 1 "cuda_sources"' in text


def _toolkit_has(header: str) -> bool:
    nvcc = find_nvcc()
    root = Path(nvcc).resolve().parent.parent if nvcc else Path("/nonexistent")
    return any((d / header).exists() for d in [root / "include", *root.glob("targets/*/include")])


@needs_nvcc
@pytest.mark.parametrize("header,body,missing", [
    ("curand_kernel.h", "__global__ void k(curandState* s) { curand_init(0, 0, 0, s); }", "curand_kernel.h"),
    ("cublas_v2.h", "void f(cublasHandle_t h, float* c) { cublasSscal(h, 1, c, c, 1); }", "cublasSscal"),
])
def test_what_this_machine_lacks_is_unverified_not_a_compile_error(tmp_path, header, body, missing):
    if _toolkit_has(header):
        pytest.skip(f"this CUDA toolkit has {header}: nothing is missing")
    sol = tmp_path / "needs_lib.py"
    sol.write_text((CUDA / "relu_inline_lean.py").read_text().replace(
        "#include <cuda_runtime.h>\n", f"#include <cuda_runtime.h>\n#include <{header}>\n{body}\n", 1))
    res = compile_only(sol)
    assert res["verdict"] == "unverified" and res["compiled"] is False, res
    # named by the symbol, or by its header when the header itself is absent here
    assert (missing in res["reason"] or header in res["reason"]) and "this machine" in res["reason"], res


@needs_nvcc
def test_search_filter_compiles_cuda_that_cannot_run_here():
    """With nvcc_filter (the search loop's early filter) a plain CPU evaluation of CUDA code
    compiles it: errors come back as compile_error, a clean build stays unverified."""
    broken = evaluate(TASK, CUDA / "relu_inline_broken.py", EvalConfig(nvcc_filter=True))
    assert broken["verdict"] == "compile_error" and "cuda_sources(6)" in broken["reason"], broken
    good = evaluate(TASK, CUDA / "relu_inline_lean.py", EvalConfig(nvcc_filter=True))
    assert good["verdict"] == "unverified" and good["compiled"] is True and good["correct"] is False, good
    plain = evaluate(TASK, CUDA / "relu_inline_broken.py", EvalConfig())
    assert plain["verdict"] == "unverified" and "nvcc" not in plain["checks"]  # off by default: no compiler run
