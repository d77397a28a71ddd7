"""How much a candidate's measurements are worth: the search's estimate of its speed and
the rule for "verified faster" (what `kopt optimize` may return instead of the reference).

Measurements of one candidate scatter (about 10% between evaluations on a busy CPU) and now
and then one is an outlier, 1.5-3x off either way. A single lucky measurement is what
crowns a false best, so the estimate of a candidate is shrunk toward its parent's (most
proposals are about as fast as their parent, or slower) and two measurements that disagree
by more than an outlier gap count as the lower one.
"""
from __future__ import annotations

import math
import statistics

VERIFIED = ("faster", "same", "slower")  # the verdicts of a candidate that ran correctly and was timed
OUTLIER_GAP = 0.3  # two log-speedups of one candidate further apart than this: one is an outlier


def combine(logs: list[float], gap: float) -> float:
    """One value from several log-speedups: two that disagree by more than `gap` count as the
    lower (one is an outlier, and a lucky one is the one that misleads); three or more, the
    median."""
    if len(logs) == 1:
        return logs[0]
    if len(logs) == 2:
        return min(logs) if abs(logs[0] - logs[1]) > gap else (logs[0] + logs[1]) / 2
    return statistics.median(logs)


def verified(results: list[dict]) -> bool:
    """Every evaluation ran, was correct and was timed."""
    return bool(results) and all(r.get("correct") and r.get("verdict") in VERIFIED for r in results)


def log_speedups(results: list[dict]) -> list[float]:
    return [math.log(r["speedup"]) for r in results if r.get("correct") and r.get("speedup")]


def verified_faster(results: list[dict], noise_floor: float, gap: float) -> bool:
    """Correct every time, and the evaluations' CI lower bounds, combined as above, clear
    1 + noise_floor: one evaluation's `faster` verdict, or the pooled evidence of several
    (a second evaluation saying `same` at 1.15x does not undo a first at 1.3x; one saying
    0.9x undoes a first at 2.5x)."""
    if not verified(results):
        return False
    lows = [r["speedup_ci"][0] for r in results if r.get("speedup_ci") and r["speedup_ci"][0]]
    if len(lows) != len(results):  # no interval: the verdicts decide, by majority
        return sum(r.get("verdict") == "faster" for r in results) * 2 > len(results)
    return combine([math.log(v) for v in lows], gap) > math.log(1 + noise_floor)


def shrunk(logs: list[float], prior: float, noise: float, spread: float, gap: float) -> float:
    """The posterior mean of a candidate's log-speedup: its measurements (combined, each
    with spread `noise`) weighed against the prior (its parent's estimate, spread `spread`)."""
    if not logs:
        return prior
    precision = len(logs) / noise ** 2
    w = precision / (precision + 1 / spread ** 2)
    return w * combine(logs, gap) + (1 - w) * prior
