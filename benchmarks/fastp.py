"""KernelBench-style metrics over a bench's per-task results. Pure functions.

fast_p is the fraction of tasks whose solution is correct *and* more than p times faster
than the reference; fast_0 is the correctness rate. Tasks that could not run here
(`status: skipped`) are left out of every denominator, and so are tasks flagged
degenerate (an all-zeros "kernel" passes them) unless asked otherwise; both are counted.

Two readings of a task's result: raw (`speedup`: its best correct proposed candidate,
faster or not) and never slower (`speedup_never_slower`: its best verified-faster candidate,
or 1.0 when there is none and kopt returns the reference, as `kopt optimize` does).
"""
from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable

from kopt.agent.search.estimate import OUTLIER_GAP, verified_faster
from kopt.sandboxes.evaluator import EvalConfig

PS = (0.0, 0.5, 1.0, 1.5, 2.0)
FAILURE_KINDS = ("compile", "incorrect", "rejected", "timeout", "runtime", "unverified")
_VERDICT_KIND = {"compile_error": "compile", "incorrect": "incorrect", "rejected": "rejected",
                 "timeout": "timeout", "runtime_error": "runtime", "unverified": "unverified"}


def failure_kind(verdict: str | None) -> str | None:
    """The failure bucket of one evaluation's verdict (None for a verified one)."""
    return _VERDICT_KIND.get(verdict or "")


def solved(r: dict, p: float) -> bool:
    sp = r.get("speedup")
    return bool(r.get("correct")) and sp is not None and sp > p


def geomean(values: Iterable[float]) -> float | None:
    vals = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else None


def metrics(results: list[dict], ps: tuple[float, ...] = PS, include_degenerate: bool = False) -> dict:
    """Summary of task results (each with `status`, `correct`, `speedup`, `degenerate`, and
    optionally `evaluations`, `tokens`, `cost`, `failures`)."""
    ran = [r for r in results if r.get("status") != "skipped"]
    degenerate = [r for r in ran if r.get("degenerate")]
    scored = ran if include_degenerate else [r for r in ran if not r.get("degenerate")]
    n = len(scored)
    failures: Counter = Counter()
    for r in scored:
        failures.update(r.get("failures") or {})
    return {
        "tasks": len(results),
        "scored": n,
        "skipped": len(results) - len(ran),
        "errors": sum(1 for r in ran if r.get("status") == "error"),
        "degenerate": len(degenerate),
        "degenerate_excluded": 0 if include_degenerate else len(degenerate),
        "correct": sum(1 for r in scored if r.get("correct")),
        "correct_rate": (sum(1 for r in scored if r.get("correct")) / n) if n else None,
        "fast_p": {_key(p): (sum(1 for r in scored if solved(r, p)) / n if n else None) for p in ps},
        "geomean_speedup": geomean(r["speedup"] for r in scored if r.get("correct") and r.get("speedup")),
        "evaluations": sum(int(r.get("evaluations") or 0) for r in ran),
        "tokens": sum(int(r.get("tokens") or 0) for r in ran),
        "cost": round(sum(float(r.get("cost") or 0.0) for r in ran), 6),
        "failures": {k: failures.get(k, 0) for k in FAILURE_KINDS},
    }


def _key(p: float) -> str:
    return f"{p:g}"


def by_level(results: list[dict], ps: tuple[float, ...] = PS, include_degenerate: bool = False) -> dict:
    """`metrics` per level ("-" for tasks without one) plus "all"."""
    levels = sorted({r.get("level") for r in results}, key=lambda v: (v is None, v or 0))
    out = {("-" if lv is None else str(lv)): metrics([r for r in results if r.get("level") == lv], ps,
                                                     include_degenerate) for lv in levels}
    out["all"] = metrics(results, ps, include_degenerate)
    return out


def fast_p_curve(results: list[dict], points: int = 61, p_max: float | None = None,
                 include_degenerate: bool = False) -> list[tuple[float, float]]:
    """(p, fast_p) from p=0 to p_max (default: a little past the best speedup) for the plot."""
    scored = [r for r in results if r.get("status") != "skipped" and (include_degenerate or not r.get("degenerate"))]
    if not scored:
        return []
    top = max([r.get("speedup") or 0.0 for r in scored if r.get("correct")] + [2.0])
    p_max = p_max or round(top * 1.1, 2)
    grid = [p_max * i / (points - 1) for i in range(points)]
    return [(p, sum(1 for r in scored if solved(r, p)) / len(scored)) for p in grid]


def baseline_results(results: list[dict], name: str) -> list[dict]:
    """Per-task results of one baseline (e.g. "compile") in the shape `metrics` takes."""
    out = []
    for r in results:
        b = (r.get("baselines") or {}).get(name) or {}
        ran = r.get("status") != "skipped" and b and not b.get("skipped")
        out.append({"level": r.get("level"), "status": "done" if ran else "skipped",
                    "degenerate": r.get("degenerate"), "correct": bool(b.get("correct")),
                    "speedup": b.get("speedup")})
    return out


def never_slower_speedup(proposed: dict[str, list[dict]], noise_floor: float | None = None) -> float:
    """What a task yields under the never-slower rule: the median speedup of its best
    verified-faster candidate (`estimate.verified_faster`), or 1.0 (the reference)."""
    floor = EvalConfig().noise_floor if noise_floor is None else noise_floor
    best = 1.0
    for results in proposed.values():
        if verified_faster(results, floor, OUTLIER_GAP):
            best = max(best, statistics.median(r["speedup"] for r in results))
    return best


def never_slower_results(results: list[dict]) -> list[dict]:
    """Per-task results under the never-slower rule, in the shape `metrics` takes: a finished
    task with no verified-faster candidate counts 1.0x (correct: the reference is returned)."""
    out = []
    for r in results:
        done = r.get("status") == "done"
        sp = r.get("speedup_never_slower") if done else None
        out.append({**r, "correct": done and sp is not None, "speedup": sp})
    return out
