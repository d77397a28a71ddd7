"""Does kopt's selection rule pick the truly best candidate more often than greedy or random?

Drives the real `kopt.agent.search.Search` (in-memory store, temporary run dir) on a
simulated landscape, at equal evaluation budgets, with these selection rules:

  kopt      the loop as shipped: rank by the mean reward over all of a candidate's
            evaluations, re-evaluate the top-k (up to 3 evaluations each), expand them,
            return the verified candidate with the best median speedup (`Search.best`);
            a candidate expanded and fully re-evaluated leaves the queue (POLCA's pop);
            the last 20% of the budget first re-measures the contenders for best (median
            within 15% of the best's) and explores only while a new child could still be
            confirmed (`confirm_reserve`, `confirm_margin`).
  greedy    same loop, best-first on the best *single* measurement: expand the
            best-measured candidate not yet expanded, no re-evaluation (every evaluation
            goes to a new child), return the best single measurement.
  random    same loop, parents picked at random among the correct candidates not yet
            expanded (a new draw each iteration), no re-evaluation, return the best
            single measurement.

Landscape: a tree. The reference (root) has true speedup 1. Each expansion yields
`--children` children, each either broken (compile error 15%, wrong result 10%) or
correct, with true speedup = parent's * exp(N(-0.15, 0.3)): about 70% slower than the
parent, 30% faster (a child of a broken parent is a fix of it and starts from what the
parent would have been). A measurement is true * exp(N(0, 0.07)); 5% of measurements are lucky outliers
inflated by U(1.5, 3). The tree and every candidate's k-th measurement depend only on the
seed and the candidate's place in the tree (common random numbers), so the rules
see the same landscape and the same noise for the same candidate.

Metrics per cell (runs = seeds):
  false best   the returned best's true speedup is more than 5% below the best true
               speedup among the candidates the run evaluated correctly, or it is
               below 1 while its claimed speedup is above 1 (95% CI half-width shown)
  true sp.     mean true speedup of the returned best
  oracle       mean of the best true speedup among evaluated candidates (the ceiling)
  holds        % of runs whose returned best is that truly best evaluated candidate
  settle       median number of evaluations after which the run's incumbent is the
               truly best evaluated candidate and stays so to the end (runs that hold it)
  evals        mean evaluations spent (the loop may stop before the budget)
  once         % of the false bests that were measured only once
  stopped      % of runs that ended before the budget was spent (search exhausted, or the
               best confirmed with too little budget left to confirm a new candidate)

    python benchmarks/studies/search_efficiency.py [--runs 200] [--budgets 10 20 40] [--children 4]
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from kopt.agent.core import Candidate
from kopt.agent.search import Search, SearchConfig
from kopt.agent.store import Store
from kopt.rl_finetune.rewards import reward

TASK = """import torch


class Model(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.randn(16)]


def get_init_inputs():
    return []
"""

ROOT = "r"
P_COMPILE, P_WRONG = 0.15, 0.10
STEP_MU, STEP_SIGMA = -0.15, 0.30
NOISE_SIGMA = 0.07
P_LUCKY, LUCKY = 0.05, (1.5, 3.0)
NOISE_FLOOR = 0.1  # as kopt's EvalConfig: `faster` needs the CI's low end above 1.1


class Landscape:
    """The simulated truth. Everything is a pure function of (seed, candidate path)."""

    def __init__(self, seed: int):
        self.seed = seed
        self.speed: dict[str, float] = {ROOT: 1.0}  # sim id -> true speedup (what it would be if it worked)
        self.broken: dict[str, str | None] = {ROOT: None}  # sim id -> failure verdict, None if correct
        self.count: dict[str, int] = {}

    def rng(self, *key) -> random.Random:
        return random.Random(":".join(map(str, (self.seed, *key))))

    def true(self, sid: str) -> float | None:
        return None if self.broken[sid] else self.speed[sid]

    def child(self, parent: str, i: int) -> str:
        sid = f"{parent}.{i}"
        if sid not in self.speed:
            r = self.rng("child", sid)
            u = r.random()
            self.broken[sid] = "compile_error" if u < P_COMPILE else "incorrect" if u < P_COMPILE + P_WRONG else None
            # a child of a broken parent is a fix of it: it starts from what the parent meant to be
            self.speed[sid] = self.speed[parent] * math.exp(r.gauss(STEP_MU, STEP_SIGMA))
        return sid

    def measure(self, sid: str) -> dict:
        k = self.count[sid] = self.count.get(sid, 0) + 1
        if (v := self.broken[sid]):
            return {"verdict": v, "correct": False, "compiled": v != "compile_error", "speedup": None,
                    "speedup_ci": None, "reason": f"simulated {v}"}
        r = self.rng("measure", sid, k)
        m = self.speed[sid] * math.exp(r.gauss(0.0, NOISE_SIGMA))
        if r.random() < P_LUCKY:
            m *= r.uniform(*LUCKY)
        lo, hi = m * math.exp(-0.06), m * math.exp(0.06)
        verdict = "faster" if lo > 1 + NOISE_FLOOR else "slower" if hi < 1 / (1 + NOISE_FLOOR) else "same"
        return {"verdict": verdict, "correct": True, "compiled": True, "speedup": round(m, 4),
                "speedup_ci": [round(lo, 4), round(hi, 4)], "ref_ms": 1.0, "new_ms": round(1.0 / m, 6),
                "reason": None, "checks": {"simulated": True}}


def sim_id(code: str) -> str:
    for line in code.splitlines():
        if line.startswith("SIM_ID = "):
            return line.split("'")[1]
    return ROOT  # the reference copy Search starts from


def child_code(sid: str) -> str:
    return (f"SIM_ID = '{sid}'\nimport torch\n\n\nclass ModelNew(torch.nn.Module):\n"
            f"    def forward(self, x):\n        return simulated_kernel(x, '{sid}')\n")


class SimProposer:
    name = "sim"

    def __init__(self, land: Landscape, children: int):
        self.land, self.children = land, children

    def propose(self, context: dict) -> list[Candidate]:
        parent = context["parent"]
        out = []
        for i in range(self.children):
            sid = self.land.child(sim_id(parent.code), i)
            out.append(Candidate(code=child_code(sid), parent_ids=[parent.id], plan_step=f"sim step {sid}",
                                 proposer={"model": "sim"}, prompt=f"improve {sid}", completion=child_code(sid)))
        return out


def sim_evaluator(land: Landscape):
    def evaluator(task_path: Path, solution_path: Path, cfg) -> dict:
        return land.measure(sim_id(Path(solution_path).read_text()))
    return evaluator


class GreedySearch(Search):
    """Best-first on the best *single* measurement: expand the best-measured candidate not yet
    expanded; return the verified candidate with the best single measurement. Run with
    max_evals_per_candidate=1, so every evaluation goes to a new child."""

    def single_score(self, cid: str) -> float:
        scores = [r for r in (reward(x) for x in self.evals.get(cid, [])) if r is not None]
        return max(scores) if scores else -1.0

    def mean_score(self, cid: str) -> float:  # the loop's ranking key
        return -0.5 if cid in self.expanded else self.single_score(cid)

    def best(self) -> str | None:
        ok = [cid for cid in self.cands if self.verified(cid)]
        return max(ok, key=lambda c: max(r["speedup"] for r in self.evals[c]), default=None)


class RandomSearch(GreedySearch):
    """Expand random correct candidates not yet expanded (a new draw each iteration); return the
    best single measurement."""

    seed = 0

    def mean_score(self, cid: str) -> float:
        real = self.single_score(cid)
        if cid in self.expanded or real <= 0.1:  # broken or wrong: expanded only when nothing else is left
            return -0.5 if cid in self.expanded else real
        # constant within one ranking (stats.evaluations does not move while the loop ranks)
        key = f"{self.seed}:prio:{sim_id(self.cands[cid].code)}:{self.stats.evaluations}"  # ids are uuids
        return 1.0 + random.Random(key).random()


METHODS = {"kopt": Search, "greedy": GreedySearch, "random": RandomSearch}
OVERRIDES: dict = {}  # SearchConfig fields for every rule (--set name=value), to tune the loop
REEVAL = {"kopt": 3}  # max_evals_per_candidate; the others measure each candidate once


def one_run(args: tuple[str, int, int, int]) -> dict:
    method, budget, seed, children = args
    land = Landscape(seed)
    history: list[tuple[int, str | None]] = []

    def on_event(e: dict) -> None:
        if e["type"] == "evaluation":
            history.append((e["stats"].evaluations, e["best"]))

    cls = METHODS[method]
    cfg = SearchConfig(budget=budget, max_evals_per_candidate=REEVAL.get(method, 1), novelty="tokens",
                       **{**OVERRIDES, **({} if method in REEVAL else {"confirm_reserve": 0.0})})
    with tempfile.TemporaryDirectory(prefix="kopt-sim-") as tmp:
        task = Path(tmp) / "task.py"
        task.write_text(TASK)
        store = Store(":memory:")
        s = cls(task, SimProposer(land, children), store, f"sim-{seed}", Path(tmp), cfg, on_event=on_event,
                evaluator=sim_evaluator(land))
        s.seed = seed
        best = s.run()
        store.close()
    true = {cid: land.true(sim_id(c.code)) for cid, c in s.cands.items()}
    evaluated = {cid: t for cid, t in true.items() if s.evals.get(cid) and t is not None}
    oracle = max(evaluated.values())
    top = {cid for cid, t in evaluated.items() if t >= oracle * (1 - 1e-12)}
    best_true = float(true[best])
    claimed = s.mean_speedup(best) if method in REEVAL else max(r["speedup"] for r in s.evals[best])
    false_best = best_true < 0.95 * oracle or (best_true < 1.0 and claimed > 1.0)
    settle = None
    if best in top:
        settle = history[-1][0]
        for n, b in reversed(history):
            if b not in top:
                break
            settle = n
    return {"false_best": false_best, "true": best_true, "oracle": oracle, "holds": best in top,
            "settle": settle, "evals": s.stats.evaluations, "once": len(s.evals[best]) == 1,
            "exhausted": s.stop_reason.startswith(("search exhausted", "best confirmed"))}


def cell(rows: list[dict]) -> dict:
    n = len(rows)
    p = sum(r["false_best"] for r in rows) / n
    settles = [r["settle"] for r in rows if r["settle"] is not None]
    return {"n": n, "false": p, "false_ci": 1.96 * math.sqrt(p * (1 - p) / n),
            "true": statistics.fmean(r["true"] for r in rows), "oracle": statistics.fmean(r["oracle"] for r in rows),
            "holds": sum(r["holds"] for r in rows) / n, "settle": statistics.median(settles) if settles else None,
            "evals": statistics.fmean(r["evals"] for r in rows),
            "once": sum(r["once"] for r in rows if r["false_best"]) / max(1, sum(r["false_best"] for r in rows)),
            "exhausted": sum(r["exhausted"] for r in rows) / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="seeds per cell")
    ap.add_argument("--budgets", type=int, nargs="+", default=[10, 20, 40])
    ap.add_argument("--children", type=int, default=4, help="children per expansion")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    a = ap.parse_args()
    t0 = time.monotonic()
    jobs = [(m, b, seed, a.children) for b in a.budgets for m in METHODS for seed in range(a.runs)]
    with ProcessPoolExecutor(a.workers) as pool:
        results = list(pool.map(one_run, jobs, chunksize=16))
    by: dict[tuple[str, int], list[dict]] = {}
    for (m, b, _, _), r in zip(jobs, results):
        by.setdefault((m, b), []).append(r)
    print(f"{a.runs} runs per cell, {a.children} children per expansion, noise lognormal sigma {NOISE_SIGMA}, "
          f"{P_LUCKY:.0%} lucky outliers x{LUCKY[0]}-{LUCKY[1]}; {time.monotonic() - t0:.0f}s\n")
    print("| budget | rule     | false best      | true sp. of best | oracle | holds true best | settle (median) "
          "| evals used | false best measured once | stopped early |")
    print("|-------:|----------|-----------------|-----------------:|-------:|----------------:|----------------:"
          "|-----------:|-------------------------:|--------------:|")
    cells = {k: cell(v) for k, v in by.items()}
    for b in a.budgets:
        for m in METHODS:
            c = cells[(m, b)]
            settle = f"{c['settle']:.0f}" if c["settle"] is not None else "-"
            print(f"| {b:>6} | {m:<8} | {c['false']:6.1%} ± {c['false_ci']:5.1%} | {c['true']:16.3f} "
                  f"| {c['oracle']:6.3f} | {c['holds']:15.1%} | {settle:>15} | {c['evals']:10.1f} "
                  f"| {c['once']:24.1%} | {c['exhausted']:13.1%} |")
    ratios = {b: cells[("kopt", b)]["false"] / max(cells[("greedy", b)]["false"], 1e-9) for b in a.budgets}
    holds = all(r <= 0.5 for r in ratios.values())
    detail = "; ".join(f"{b}: {cells[('kopt', b)]['false']:.1%} vs {cells[('greedy', b)]['false']:.1%} "
                       f"(x{ratios[b]:.2f}, kopt spent {cells[('kopt', b)]['evals']:.1f})" for b in a.budgets)
    print(f"\nConclusion: kopt vs greedy false-best rate by budget -- {detail}; the design's 'far less often' "
          f"(read here as at most half, at every budget) {'HOLDS' if holds else 'DOES NOT HOLD'}.")

if __name__ == "__main__":
    main()
