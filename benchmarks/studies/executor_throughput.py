"""Evaluations per minute through each executor on this machine: local with 1 and 2 jobs,
and Ray (a local runtime with 2 CPUs). Every evaluation is a real one (two sandboxed
workers, correctness trials, timed rounds) of the same small task and solution.

    python benchmarks/studies/executor_throughput.py [--evals 6] [--task T --solution S]

The numbers depend on the cores free while it runs: the load average before and after is
printed with the table, and a busy machine makes every row slower.
"""
from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

from kopt.sandboxes.evaluator import EvalConfig
from kopt.sandboxes.executor_factory import make_executor

ROOT = Path(__file__).resolve().parents[2]  # the repository
DEFAULT_TASK = ROOT / "tests" / "fixtures" / "tasks" / "relu.py"
DEFAULT_SOLUTION = ROOT / "tests" / "fixtures" / "kb" / "relu_torch.py"


def measure(kind: str, jobs: int, n: int, task: Path, solution: Path, cfg: EvalConfig) -> dict:
    t_start = time.perf_counter()
    executor = make_executor(kind, jobs=jobs)
    startup = time.perf_counter() - t_start
    try:
        t0 = time.perf_counter()
        futures = [executor.submit(task, solution, cfg) for _ in range(n)]
        results = [f.result() for f in futures]
        wall = time.perf_counter() - t0
    finally:
        executor.shutdown()
    verdicts = Counter(r["verdict"] for r in results)
    workers = {(r.get("executor") or {}).get("pid") for r in results} - {None}
    return {"executor": kind, "jobs": jobs, "evals": n, "startup_s": startup, "wall_s": wall,
            "per_min": 60 * n / wall, "verdicts": dict(verdicts), "workers": len(workers) or jobs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evals", type=int, default=6, help="evaluations per row")
    ap.add_argument("--task", type=Path, default=DEFAULT_TASK)
    ap.add_argument("--solution", type=Path, default=DEFAULT_SOLUTION)
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray row")
    a = ap.parse_args()
    # short timing so a row takes about a minute; the same settings for every row
    cfg = EvalConfig(max_timing_s=2, rounds=5, trials=3, quality_seeds=2, threads=1)
    load_before = os.getloadavg()
    rows = [measure("local", 1, a.evals, a.task, a.solution, cfg),
            measure("local", 2, a.evals, a.task, a.solution, cfg)]
    if not a.no_ray:
        try:
            rows.append(measure("ray", 2, a.evals, a.task, a.solution, cfg))
        except Exception as e:  # noqa: BLE001 - a table row, not a crash
            print(f"ray: not measured ({type(e).__name__}: {e})")
    load_after = os.getloadavg()
    print(f"\n{a.task.name} / {a.solution.name}, {a.evals} evaluations per row, {os.cpu_count()} cores, "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after\n")
    print(f"{'executor':<10}{'jobs':>5}{'workers':>9}{'startup s':>11}{'wall s':>9}{'evals/min':>11}  verdicts")
    for r in rows:
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(r["verdicts"].items()))
        print(f"{r['executor']:<10}{r['jobs']:>5}{r['workers']:>9}{r['startup_s']:>11.1f}{r['wall_s']:>9.1f}"
              f"{r['per_min']:>11.1f}  {verdicts}")
    base = rows[0]["per_min"]
    for r in rows[1:]:
        print(f"{r['executor']} x{r['jobs']}: {r['per_min'] / base:.2f}x the throughput of local x1")


if __name__ == "__main__":
    main()
