"""Correct solutions in each CPU backend come out correct, with the right `kernel` field.

Backends: plain torch, C++ through torch's load_inline, C++ through kopt's own
`load_cpp` + ctypes, Triton under TRITON_INTERPRET=1, and CUDA (which on the CPU can only
be `unverified`). Also: the compile cache, and what `--device cuda` does with and without
a GPU.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kopt.sandboxes.evaluator import EvalConfig, evaluate

KB = Path(__file__).parents[1] / "fixtures" / "kb"
TASK = KB / "relu_task.py"
SPEED_VERDICTS = ("faster", "same", "slower")


def fast_cfg(**kw) -> EvalConfig:
    return EvalConfig(max_timing_s=3, rounds=5, **kw)


def kopt_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("kopt")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "kopt.agent.cli.app"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Builds go to a cache of this test session, never the user's ~/.cache/kopt."""
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kopt-cache"))


def assert_correct(res: dict, kernel: str) -> None:
    assert res["kernel"] == kernel, res
    assert res["compiled"] is True, res
    assert res["correct"] is True, res
    assert res["verdict"] in SPEED_VERDICTS, res
    assert "reason" not in res, res
    assert res["speedup"] is not None and res["speedup"] > 0, res
    lo, hi = res["speedup_ci"]
    assert lo <= res["speedup"] <= hi, res
    assert res["checks"]["trials"] >= 5 and res["checks"]["shapes"] >= 2, res["checks"]


def test_plain_torch_solution_is_correct():
    res = evaluate(TASK, KB / "relu_torch.py", fast_cfg())
    assert_correct(res, "torch")
    assert res["checks"]["max_abs_err"] == 0.0


def test_ctypes_load_cpp_solution_is_correct():
    res = evaluate(TASK, KB / "relu_ctypes.py", fast_cfg())
    assert_correct(res, "cpp")


@pytest.fixture(scope="module")
def inline_cold_then_warm(tmp_path_factory):
    """The load_inline solution evaluated twice on an empty compile cache: (result, seconds) x2."""
    runs = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KOPT_CACHE_DIR", str(tmp_path_factory.mktemp("cold-cache")))
        for _ in range(2):
            t0 = time.perf_counter()
            res = evaluate(TASK, KB / "relu_inline_cpp.py", fast_cfg())
            runs.append((res, time.perf_counter() - t0))
    return runs


def test_load_inline_cpp_solution_is_correct(inline_cold_then_warm):
    for res, _ in inline_cold_then_warm:
        assert_correct(res, "cpp")


def test_compile_cache_makes_second_evaluation_much_faster(inline_cold_then_warm):
    (_, cold_s), (_, warm_s) = inline_cold_then_warm
    # cold builds the extension (tens of seconds); warm only loads the cached .so
    assert warm_s < 0.5 * cold_s, f"cold {cold_s:.1f}s, warm {warm_s:.1f}s: the build was not cached"
    assert cold_s - warm_s > 3.0, f"cold {cold_s:.1f}s, warm {warm_s:.1f}s"


def test_triton_under_interpreter_is_correct_but_unverified():
    pytest.importorskip("triton")
    res = evaluate(TASK, KB / "relu_triton.py", fast_cfg())
    assert res["kernel"] == "triton", res
    assert res["verdict"] == "unverified", res
    assert res["correct"] is True, res
    assert res["compiled"] is True
    assert "TRITON_INTERPRET" in res["reason"]
    assert res["speedup"] is None  # interpreter timings mean nothing and are not reported


def test_cuda_solution_on_cpu_is_unverified_never_correct():
    res = evaluate(TASK, KB / "relu_cuda.py", fast_cfg(device="cpu"))
    assert res["kernel"] == "cuda", res
    assert res["verdict"] == "unverified", res
    assert res["correct"] is False
    assert res["speedup"] is None
    assert res["reason"] and "\n" not in res["reason"]


def test_cuda_solution_compile_only_on_cpu_is_not_correct():
    # compile-only runs nvcc: a kernel without torch headers builds in ~1 s (relu_cuda.py's take minutes)
    from kopt.sandboxes.cuda_compile import find_nvcc

    if find_nvcc() is None:
        pytest.skip("compile-only of CUDA needs nvcc")
    lean = Path(__file__).parents[1] / "fixtures" / "cuda" / "relu_inline_lean.py"
    res = evaluate(TASK, lean, fast_cfg(device="cpu", compile_only=True))
    assert res["verdict"] == "unverified", res
    assert res["correct"] is False


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("solution,kernel", [("relu_torch.py", "torch"), ("relu_cuda.py", "cuda")])
def test_device_cuda_evaluates_on_gpu(solution, kernel):
    res = evaluate(TASK, KB / solution, fast_cfg(device="cuda"))
    assert res["device"] == "cuda"
    assert_correct(res, kernel)


def test_cli_device_cuda_without_gpu_exits_3_with_one_line():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU visible, even on a GPU machine
    p = subprocess.run([*kopt_cmd(), "eval", str(TASK), str(KB / "relu_torch.py"), "--device", "cuda"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 3, (p.stdout, p.stderr)
    out = (p.stdout + p.stderr).strip()
    assert "Traceback" not in out
    assert len(out.splitlines()) == 1, out
    assert "cuda" in out.lower() and "--device cpu" in out
