"""Speedup statistics: paired rounds, medians, a bootstrap CI and the verdict rule."""
from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass


@dataclass
class SpeedupEstimate:
    speedup: float
    ci: tuple[float, float]
    ref_ms: float
    new_ms: float
    rounds: int


def estimate_speedup(ref_ms: list[float], new_ms: list[float], resamples: int = 2000,
                     seed: int = 0) -> SpeedupEstimate:
    """Median of per-round ratios (ref/new) with a percentile bootstrap CI.

    Rounds are paired (reference and candidate ran back to back), so a burst of load
    from another process hits both sides of one ratio and cancels out.
    """
    if len(ref_ms) != len(new_ms) or not ref_ms:
        raise ValueError("need the same, non-zero number of rounds on both sides")
    ratios = [r / n for r, n in zip(ref_ms, new_ms)]
    rng = random.Random(seed)
    k = len(ratios)
    boot = sorted(statistics.median(rng.choices(ratios, k=k)) for _ in range(resamples))
    lo, hi = boot[int(0.025 * resamples)], boot[min(resamples - 1, int(0.975 * resamples))]
    return SpeedupEstimate(statistics.median(ratios), (lo, hi), statistics.median(ref_ms),
                           statistics.median(new_ms), k)


def speed_verdict(est: SpeedupEstimate, noise_floor: float) -> str:
    """`faster` only when the whole CI clears 1 + noise floor; `slower` symmetrically."""
    if est.ci[0] > 1.0 + noise_floor:
        return "faster"
    if est.ci[1] < 1.0 / (1.0 + noise_floor):
        return "slower"
    return "same"


def combine_pairs(first: dict, second: dict) -> dict:
    """One verdict from two pairs of worker processes timing the same code (`speedup`,
    `speedup_ci`, `verdict` each). Where they agree, the estimate nearer to 1 stands; where
    they do not, the difference belonged to a pair, not to the code: `same`, with the
    geometric mean of the two and a CI spanning both."""
    if first["verdict"] == second["verdict"]:
        keep = min((first, second), key=lambda r: abs(math.log(r["speedup"])))
        return {"speedup": keep["speedup"], "speedup_ci": list(keep["speedup_ci"]), "verdict": keep["verdict"]}
    lo = min(first["speedup_ci"][0], second["speedup_ci"][0])
    hi = max(first["speedup_ci"][1], second["speedup_ci"][1])
    return {"speedup": round(math.sqrt(first["speedup"] * second["speedup"]), 4), "speedup_ci": [lo, hi],
            "verdict": "same"}
