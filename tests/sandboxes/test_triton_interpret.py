"""Triton kernels without a GPU: the source checks catch a misspelt `tl.` function or a
launch that cannot bind before anything runs, and under TRITON_INTERPRET=1 the kernels
really run on the CPU, so a wrong one is `incorrect` and a right one `unverified` (correct,
but its interpreter timing means nothing)."""
from __future__ import annotations

from pathlib import Path

import pytest

triton = pytest.importorskip("triton")

from kopt.sandboxes.evaluator import EvalConfig, evaluate  # noqa: E402
from kopt.sandboxes.triton_check import check_triton  # noqa: E402

FIX = Path(__file__).parents[1] / "fixtures"
CUDA = FIX / "cuda"
SOFTMAX = FIX / "tasks" / "softmax_wide.py"
GOOD = CUDA / "softmax_triton.py"


def run_or_skip(solution: Path) -> dict:
    """Evaluate; skip (with the reason) where Triton's interpreter itself cannot run here."""
    res = evaluate(SOFTMAX, solution, EvalConfig(trials=2, quality_seeds=2, max_timing_s=2, rounds=3))
    if res["verdict"] == "runtime_error" and "interpret" in res.get("reason", "").lower():
        pytest.skip(f"Triton's interpreter does not run on this CPU: {res['reason']}")
    return res


def test_correct_kernel_runs_under_the_interpreter():
    res = run_or_skip(GOOD)
    assert res["kernel"] == "triton" and res["correct"] is True, res
    assert res["verdict"] == "unverified" and "TRITON_INTERPRET" in res["reason"]
    assert res["checks"]["trials"] >= 2 and res["speedup"] is None


def test_wrong_kernel_is_incorrect():
    res = run_or_skip(CUDA / "softmax_triton_wrong.py")
    assert res["kernel"] == "triton" and res["verdict"] == "incorrect" and res["correct"] is False, res
    assert "values differ" in res["reason"]


def test_misspelt_language_function_is_a_compile_error_before_running():
    res = evaluate(SOFTMAX, CUDA / "softmax_triton_broken.py", EvalConfig())
    assert res["verdict"] == "compile_error" and res["compiled"] is False, res
    assert "tl.exponential does not exist" in res["reason"] and "line 15" in res["reason"]
    assert "phase_s" not in res["checks"]  # no worker was started


def test_source_checks():
    good = GOOD.read_text()
    assert check_triton(good) == []
    assert any("unknown argument 'BLOK'" in p for p in check_triton(good.replace("BLOCK=triton", "BLOK=triton")))
    extra = good.replace("(x, y, cols, x.stride(0), BLOCK=", "(x, y, cols, 1, x.stride(0), 2, BLOCK=")
    assert any("6 positional arguments, but the kernel takes 5" in p for p in check_triton(extra))
    twice = good.replace("(x, y, cols, x.stride(0), BLOCK=", "(x, y, cols, x.stride(0), 8, BLOCK=")
    assert any("'BLOCK' given both by position and by name" in p for p in check_triton(twice))
    loop = good.replace("    e = tl.exp(x)\n", "    e = tl.exp(x)\n    z = [v for v in range(3)]\n")
    assert any("a list comprehension is not supported" in p for p in check_triton(loop))
    # launch options and autotuned constexprs are not mistaken for errors
    no_block = good.replace(" BLOCK=triton.next_power_of_2(cols),", "")
    assert any("missing argument(s) BLOCK" in p for p in check_triton(no_block))
    tuned = no_block.replace("@triton.jit", "@triton.autotune(configs=[], key=['n_cols'])\n@triton.jit")
    assert check_triton(tuned) == []
