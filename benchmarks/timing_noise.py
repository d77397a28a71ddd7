"""How much does the speedup of a *copy of the reference* move between evaluations?

Runs `kopt eval` on a reference copy N times, quietly and then with a competing CPU
load (a busy process on every core), and prints min / median / max of the speedups and
how many landed in [0.9, 1.1] with verdict `same`.

    python benchmarks/timing_noise.py [--runs 10] [--task T --solution S]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

from kopt.sandboxes.evaluator import EvalConfig, evaluate

HERE = Path(__file__).parent / "examples"


def _burn(stop):
    x = 0
    while not stop.is_set():
        x = (x * 31 + 7) % 1000003


def measure(task: Path, solution: Path, runs: int) -> list[dict]:
    return [evaluate(task, solution, EvalConfig()) for _ in range(runs)]


def row(label: str, results: list[dict]) -> str:
    sp = [r["speedup"] for r in results if r["speedup"] is not None]
    ok = sum(1 for r in results if r["verdict"] == "same" and 0.9 <= (r["speedup"] or 0) <= 1.1)
    secs = statistics.median(r["checks"]["eval_s"] for r in results)
    return (f"| {label:<22} | {min(sp):6.3f} | {statistics.median(sp):6.3f} | {max(sp):6.3f} "
            f"| {ok:>3}/{len(results):<3} | {secs:6.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--task", type=Path, default=HERE / "relu_task.py")
    ap.add_argument("--solution", type=Path, default=HERE / "relu_copy.py")
    a = ap.parse_args()
    print(f"task {a.task.name}, solution {a.solution.name}, {a.runs} evaluations each, "
          f"{os.cpu_count()} CPUs\n")
    print("| condition              |    min | median |    max | same in [0.9,1.1] | s/eval |")
    print("|------------------------|--------|--------|--------|---------|--------|")
    print(row("quiet", measure(a.task, a.solution, a.runs)), flush=True)
    stop = mp.Event()
    burners = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(os.cpu_count() or 1)]
    for p in burners:
        p.start()
    time.sleep(0.5)
    try:
        print(row("competing load (all CPUs)", measure(a.task, a.solution, a.runs)), flush=True)
    finally:
        stop.set()
        for p in burners:
            p.join()


if __name__ == "__main__":
    main()
