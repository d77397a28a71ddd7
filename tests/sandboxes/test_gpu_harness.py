"""The GPU harness: CUDA events cross-checked with clocks the candidate cannot move, the
memory check, one evaluation per GPU. The checks' logic runs anywhere; the `gpu` tests run
the KernelBench harness on real kernels (CUDA through load_inline, CuPy, Triton) and need a
CUDA GPU (skipped without one)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from kopt.sandboxes import gpu_timing
from kopt.sandboxes.evaluator import EvalConfig, evaluate
from kopt.sandboxes.gpu_timing import GpuLeases, RoundTimes, cross_check, memory_verdict, parse_gpus

FIX = Path(__file__).parents[1] / "fixtures"
CUDA = FIX / "cuda"
RELU, SOFTMAX = FIX / "tasks" / "relu.py", FIX / "tasks" / "softmax_wide.py"


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


gpu = pytest.mark.gpu
needs_gpu = pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU")


# -- the checks, on numbers (no GPU needed) -----------------------------------------------------

def honest(event: float, n: int = 5, launch: float = 0.02) -> RoundTimes:
    return RoundTimes([event] * n, [event + launch] * n, kopt_wall_ms=n * (event + launch) + 0.3)


def test_honest_event_times_pass():
    assert cross_check(honest(1.0), honest(0.5)) is None
    assert cross_check(honest(0.004), honest(0.003)) is None  # tiny kernels: the slack covers launch noise


def test_events_longer_than_the_wall_clock_are_rejected():
    forged = RoundTimes([2.0] * 5, [2.02] * 5, kopt_wall_ms=4.0)  # 10 ms of events in a 4 ms round
    assert "exceed kopt's wall clock" in cross_check(honest(1.0), forged)


def test_work_left_on_a_side_stream_is_rejected():
    # the end event fires at once; draining the device takes the real millisecond
    hidden = RoundTimes([0.005] * 5, [1.0] * 5, kopt_wall_ms=5.5)
    reason = cross_check(honest(1.0), hidden)
    assert reason and "outside the timed stream" in reason


def test_memory_verdicts():
    assert memory_verdict({"allocated_mb": 10.0}, {"wedged": False, "allocated_mb": 12.0}) == (None, None)
    problem, _ = memory_verdict({"allocated_mb": 10.0}, {"wedged": True, "error": "illegal memory access"})
    assert "illegal memory access" in problem
    problem, note = memory_verdict({"allocated_mb": 10.0}, {"wedged": False, "allocated_mb": 500.0})
    assert problem is None and "grew by 490 MiB" in note


def test_parse_gpus():
    assert parse_gpus("0,1") == [0, 1] and parse_gpus("3") == [3] and parse_gpus(None) == []
    for bad in ("a", "0,0", "-1", ","):
        with pytest.raises(ValueError, match="--gpus"):
            parse_gpus(bad)


def test_one_evaluation_per_gpu_at_a_time():
    busy: dict[int, int] = {}
    seen: list[int] = []
    lock = threading.Lock()

    def evaluation(task, solution, cfg):
        with lock:
            busy[cfg.gpu] = busy.get(cfg.gpu, 0) + 1
            assert busy[cfg.gpu] == 1, f"two evaluations on GPU {cfg.gpu}"
            seen.append(cfg.gpu)
        time.sleep(0.05)
        with lock:
            busy[cfg.gpu] -= 1
        return {"verdict": "same"}

    leased = GpuLeases(evaluation, [0, 1])
    threads = [threading.Thread(target=leased, args=(RELU, RELU, EvalConfig())) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(seen)) == [0, 1] and len(seen) == 6


def test_worker_env_pins_the_leased_gpu():
    from kopt.sandboxes.evaluator import _worker_env

    assert _worker_env(EvalConfig(gpu=1, device="cuda"), 1, "cuda")["CUDA_VISIBLE_DEVICES"] == "1"
    assert "CUDA_VISIBLE_DEVICES" not in _worker_env(EvalConfig(), 1, "torch")


# -- on a GPU -----------------------------------------------------------------------------------

def gpu_cfg(**kw) -> EvalConfig:
    return EvalConfig(device="cuda", max_timing_s=5, rounds=7, **kw)


def assert_correct(res: dict, kernel: str) -> None:
    assert res["correct"] is True and res["kernel"] == kernel, res
    assert res["verdict"] in ("faster", "same", "slower"), res
    mem = res["checks"]["gpu_memory"]
    assert mem["wedged"] is False, mem
    assert "torch_compile" in res["checks"], res["checks"]  # the second baseline, or why it is missing


@gpu
@needs_gpu
@pytest.mark.parametrize("task,solution", [(RELU, "relu_inline_lean.py"), (SOFTMAX, "softmax_cuda.py")])
def test_correct_cuda_kernels_through_load_inline(task, solution):
    assert_correct(evaluate(task, CUDA / solution, gpu_cfg()), "cuda")


@gpu
@needs_gpu
def test_side_stream_hack_is_rejected():
    res = evaluate(RELU, CUDA / "relu_side_stream.py", gpu_cfg())
    assert res["verdict"] == "rejected" and res["correct"] is False, res
    assert "outside the timed stream" in res["reason"]


@gpu
@needs_gpu
def test_cupy_kernel_is_correct_and_counted():
    pytest.importorskip("cupy")
    assert_correct(evaluate(RELU, CUDA / "relu_cupy.py", gpu_cfg()), "cupy")


@gpu
@needs_gpu
def test_triton_kernel_on_the_gpu():
    pytest.importorskip("triton")
    assert_correct(evaluate(SOFTMAX, CUDA / "softmax_triton.py", gpu_cfg()), "triton")


@gpu
@needs_gpu
def test_reference_copy_times_at_one():
    res = evaluate(SOFTMAX, CUDA / "softmax_reference_copy.py", gpu_cfg(max_timing_s=10, rounds=15))
    assert res["correct"] is True, res
    assert 0.95 <= res["speedup"] <= 1.05, (res["speedup"], res["speedup_ci"], res["ref_ms"], res["new_ms"])


@gpu
@needs_gpu
def test_gpu_lease_reaches_the_workers():
    res = GpuLeases(evaluate, [0])(RELU, CUDA / "relu_inline_lean.py", gpu_cfg())
    assert res["checks"]["gpu_index"] == 0 and res["correct"] is True, res


def test_gpu_timing_module_needs_no_torch_at_import():
    # the harness imports it before torch; it must stay import-light
    assert not hasattr(gpu_timing, "torch")


def test_local_executor_with_gpus_runs_one_evaluation_per_gpu():
    from kopt.sandboxes.executor_factory import make_executor

    ex = make_executor("local", jobs=8, gpus=[0, 1])
    try:
        assert ex.jobs == 2 and isinstance(ex.evaluator, GpuLeases) and ex.evaluator.gpus == [0, 1]
    finally:
        ex.shutdown()


def test_evaluator_uses_event_times_only_when_they_check_out():
    from kopt.sandboxes.evaluator import Verdict, _gpu_call_ms

    # kopt's clock (seconds) around each side's round of 5 calls, and the workers' numbers:
    # 1 ms of each round outside the events on both sides (the same harness work)
    times = {"ref": 0.006, "new": 0.0035, "ref_gpu": ([1.0] * 5, [1.02] * 5), "new_gpu": ([0.5] * 5, [0.52] * 5)}
    assert _gpu_call_ms(times) == (1.0, 0.5)
    times["new_gpu"] = ([0.005] * 5, [1.0] * 5)
    with pytest.raises(Verdict, match="outside the timed stream"):
        _gpu_call_ms(times)
    times["new_gpu"] = ([3.0] * 5, [3.02] * 5)  # 15 ms of events inside 4 ms of kopt's clock
    with pytest.raises(Verdict, match="exceed kopt's wall clock"):
        _gpu_call_ms(times)
