"""`--executor ray` on a local Ray runtime with 2 CPU workers: evaluations spread over both
worker processes, a worker killed mid-evaluation has its evaluation retried on another, and a
real evaluation (nvcc compile-only, no GPU needed) comes back through Ray with where it ran."""
from __future__ import annotations

import functools
import os
import signal
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from kopt.sandboxes.evaluator import EvalConfig  # noqa: E402
from kopt.sandboxes.executor_factory import make_executor  # noqa: E402
from kopt.sandboxes.ray_executor import RayExecutor  # noqa: E402

FIX = Path(__file__).parents[1] / "fixtures"
TASK = FIX / "tasks" / "relu.py"
SOLUTION = FIX / "cuda" / "relu_inline_lean.py"


def slow_evaluation(task: Path, solution: Path, cfg: EvalConfig) -> dict:
    """Long enough that two at a time overlap; reads the files it was sent."""
    time.sleep(0.5)
    return {"verdict": "same", "solution_bytes": len(Path(solution).read_text()), "seen_task": Path(task).name}


def dies_once(marker: Path, task: Path, solution: Path, cfg: EvalConfig) -> dict:
    """The first attempt kills its own worker process (as a segfault or an OOM kill would)."""
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return {"verdict": "same", "killed_pid": int(marker.read_text())}


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    """One local runtime (2 CPUs) for the whole module: Ray takes seconds to start."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import tests/
    if ray.is_initialized():
        ray.shutdown()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KOPT_CACHE_DIR", str(tmp_path_factory.mktemp("ray-cache")))  # the workers inherit it
        ex = make_executor("ray", jobs=2)
    yield ex
    ex.shutdown()
    assert not ray.is_initialized()


def test_make_executor_gives_a_ray_executor(executor):
    assert isinstance(executor, RayExecutor) and executor.name == "ray" and executor.jobs == 2
    assert ray.cluster_resources().get("CPU") == 2


def test_evaluations_spread_across_both_workers(executor):
    executor.evaluator = slow_evaluation
    futures = [executor.submit(TASK, SOLUTION, EvalConfig()) for _ in range(6)]
    results = [f.result(timeout=120) for f in futures]
    pids = {r["executor"]["pid"] for r in results}
    assert len(pids) == 2, results
    assert all(r["executor"]["node"] and r["executor"]["host"] for r in results)
    # the files travelled as text and came back under their own names
    assert all(r["solution_bytes"] == len(SOLUTION.read_text()) and r["seen_task"] == TASK.name for r in results)
    assert all(r["solution"] == str(SOLUTION) and r["task"] == str(TASK) for r in results)


def test_killed_worker_evaluation_is_retried_elsewhere(executor, tmp_path):
    marker = tmp_path / "attempt"
    executor.evaluator = functools.partial(dies_once, marker)
    result = executor.submit(TASK, SOLUTION, EvalConfig()).result(timeout=120)
    assert marker.exists(), "the first attempt never ran"
    assert result["verdict"] == "same"
    assert result["executor"]["pid"] != result["killed_pid"], result


def test_real_compile_only_evaluation_through_ray(executor):
    pytest.importorskip("torch")
    from kopt.sandboxes.cuda_compile import find_nvcc
    from kopt.sandboxes.evaluator import evaluate

    if find_nvcc() is None:
        pytest.skip("needs nvcc")
    executor.evaluator = evaluate
    res = executor.submit(TASK, SOLUTION, EvalConfig(compile_only=True)).result(timeout=300)
    assert res["verdict"] == "unverified" and res["compiled"] is True and res["correct"] is False, res
    assert res["kernel"] == "cuda" and res["checks"]["nvcc"]["units"][0]["ok"] is True
    assert res["executor"]["name"] == "ray" and res["executor"]["pid"] != os.getpid()
