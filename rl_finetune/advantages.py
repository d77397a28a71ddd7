"""Advantages of one group of completions of the same prompt. Pure functions over floats.

A GRPO update pushes up completions that beat their siblings and pushes down the rest; how
"beat" is measured is the baseline and how far is the scale. Each function here takes the
group's rewards and returns an `Advantages`: one number per completion plus whether that
completion enters the loss at all. New variants register in `ADVANTAGES` under the name that
`GRPOConfig.advantage` uses.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

EPS = 1e-6
MAD_TO_STD = 1.4826  # MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True)
class Advantages:
    values: list[float]
    keep: list[bool]  # False: left out of the loss (it carries no signal by construction)


def group_advantages(rewards: Sequence[float], eps: float = EPS) -> Advantages:
    """(r - mean) / std within the group (GRPO). A group whose rewards are all equal says nothing about which
    completion is better, so every advantage is 0 rather than 0/0."""
    r = [float(x) for x in rewards]
    if not r:
        return Advantages([], [])
    mean = sum(r) / len(r)
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / len(r))  # population std; statistics.pstdev is exact, slow
    if std <= eps:
        return Advantages([0.0] * len(r), [True] * len(r))
    return Advantages([(x - mean) / (std + eps) for x in r], [True] * len(r))


def median_advantages(rewards: Sequence[float], eps: float = EPS) -> Advantages:
    """MC-GRPO: the median is the baseline and the (normal-consistent) median absolute deviation the scale, so
    one outlier reward (a lucky timing, a wild speedup) moves neither. With an odd group (G+1 samples) one
    sample *is* the median: its advantage is 0 by construction, so it is left out of the loss and the other G
    give the update. If the MAD is 0 (more than half the group ties) the scale falls back to the mean absolute
    deviation from the median; all-equal rewards give all-zero advantages."""
    r = [float(x) for x in rewards]
    if not r:
        return Advantages([], [])
    med = statistics.median(r)
    keep = [True] * len(r)
    if len(r) % 2 == 1:
        keep[sorted(range(len(r)), key=lambda i: (r[i], i))[len(r) // 2]] = False
    dev = [abs(x - med) for x in r]
    scale = MAD_TO_STD * statistics.median(dev)
    if scale <= eps:
        scale = sum(dev) / len(dev)
    if scale <= eps:
        return Advantages([0.0] * len(r), keep)
    return Advantages([(x - med) / (scale + eps) for x in r], keep)


AdvantageFn = Callable[[Sequence[float]], Advantages]

ADVANTAGES: dict[str, AdvantageFn] = {
    "group": group_advantages,
    "median": median_advantages,
}


def batch_advantages(groups: Sequence[Sequence[float]], kind: str = "group") -> list[Advantages]:
    """One `Advantages` per group, by the variant named `kind`."""
    fn = ADVANTAGES[kind]
    out = []
    for g in groups:
        if any(not math.isfinite(x) for x in g):
            raise ValueError(f"non-finite reward in group {list(g)}: a reward function returned NaN/inf")
        out.append(fn(g))
    return out
