"""How much does the speedup of a *copy of the reference* move between evaluations?

Runs `kopt eval` on a reference copy N times per condition and prints min / median / max
of the speedups and how many landed in [0.9, 1.1] with verdict `same`, and the same figures in
the workers' CPU seconds (`checks.cpu_speedup`), which waiting for a core does not move. Conditions: quiet;
two evaluations at once (as `kopt bench --jobs 2` runs them); a competing CPU load (a busy
process on every core); and a large memory-bound task (ELU over 64 x 393216 floats, 100 MB
a tensor, the shape that once timed a copy at 0.5x), quiet, two at once and under load.

    python benchmarks/studies/timing_noise.py [--runs 10] [--task T --solution S] [--no-large]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kopt.sandboxes.evaluator import EvalConfig, evaluate

HERE = Path(__file__).resolve().parents[1] / "examples"

LARGE_TASK = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return torch.nn.functional.elu(x, alpha=self.alpha)


batch_size = 64
dim = 393216


def get_inputs():
    return [torch.rand(batch_size, dim)]


def get_init_inputs():
    return [1.0]
'''


def _burn(stop):
    x = 0
    while not stop.is_set():
        x = (x * 31 + 7) % 1000003


def measure(task: Path, solution: Path, runs: int, at_once: int = 1) -> list[dict]:
    """`runs` evaluations, `at_once` of them running together."""
    with ThreadPoolExecutor(at_once) as pool:
        return list(pool.map(lambda _: evaluate(task, solution, EvalConfig()), range(runs)))


def row(label: str, results: list[dict]) -> str:
    sp = [r["speedup"] for r in results if r["speedup"] is not None] or [float("nan")]
    ok = sum(1 for r in results if r["verdict"] == "same" and 0.9 <= (r["speedup"] or 0) <= 1.1)
    secs = statistics.median(r["checks"]["eval_s"] for r in results)
    other = sorted({r["verdict"] for r in results} - {"same"})
    # the same rounds in the workers' CPU seconds: what the load does not move (None without a cgroup)
    cpu = [r["checks"]["cpu_speedup"]["speedup"] for r in results if r["checks"].get("cpu_speedup")]
    cpu_text = (f"{min(cpu):.3f} / {statistics.median(cpu):.3f} / {max(cpu):.3f}" if cpu else "--")
    return (f"| {label:<26} | {min(sp):6.3f} | {statistics.median(sp):6.3f} | {max(sp):6.3f} "
            f"| {ok:>3}/{len(results):<3} | {secs:6.1f} | {cpu_text} | {', '.join(other)}")


def with_load(fn):
    stop = mp.Event()
    burners = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(os.cpu_count() or 1)]
    for p in burners:
        p.start()
    time.sleep(0.5)
    try:
        return fn()
    finally:
        stop.set()
        for p in burners:
            p.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--task", type=Path, default=HERE / "relu_task.py")
    ap.add_argument("--solution", type=Path, default=HERE / "relu_copy.py")
    ap.add_argument("--no-large", action="store_true", help="skip the large memory-bound task")
    a = ap.parse_args()
    print(f"task {a.task.name}, solution {a.solution.name}, {a.runs} evaluations each, "
          f"{os.cpu_count()} CPUs\n")
    print("| condition                  |    min | median |    max | same in [0.9,1.1] | s/eval "
          "| CPU-seconds speedup min / median / max | other verdicts")
    print("|----------------------------|--------|--------|--------|---------|--------|------|------")
    print(row("quiet", measure(a.task, a.solution, a.runs)), flush=True)
    print(row("two evaluations at once", measure(a.task, a.solution, a.runs, at_once=2)), flush=True)
    print(row("competing load (all CPUs)", with_load(lambda: measure(a.task, a.solution, a.runs))), flush=True)
    if a.no_large:
        return
    with tempfile.TemporaryDirectory() as d:
        task, copy = Path(d) / "elu_large.py", Path(d) / "elu_large_copy.py"
        task.write_text(LARGE_TASK)
        copy.write_text(LARGE_TASK.replace("class Model(", "class ModelNew("))
        print(row("large (ELU 64x393216)", measure(task, copy, a.runs)), flush=True)
        print(row("large, two at once", measure(task, copy, a.runs, at_once=2)), flush=True)
        print(row("large, competing load", with_load(lambda: measure(task, copy, a.runs))), flush=True)


if __name__ == "__main__":
    main()
