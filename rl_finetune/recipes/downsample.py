"""D^3S (dynamic dual-level down-sampling): not every rollout and not every token is worth a
gradient. At the sample level, keep the subset of a group whose advantages spread the most (the
largest variance: the clearest better-vs-worse contrast); at the token level, keep the tokens
where |advantage| x policy entropy is largest (a confident token moves little, a token with no
advantage moves nothing). The "dynamic" part is a schedule: start aggressive and relax toward
keeping everything, so the focus speeds early learning without over-fitting the extremes later.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def max_variance_subset(values: Sequence[float], k: int) -> list[int]:
    """Indices (ascending) of the k values with the largest population variance. Such a subset is always the
    j largest plus the k - j smallest for some j, so trying every j is exact. Ties keep earlier indices."""
    n = len(values)
    if k >= n:
        return list(range(n))
    if k <= 0:
        return []
    order = sorted(range(n), key=lambda i: (values[i], i))
    best, best_var = None, -1.0
    for j in range(k + 1):
        chosen = order[:k - j] + (order[n - j:] if j else [])
        var = statistics.pvariance([values[i] for i in chosen]) if k > 1 else 0.0
        if var > best_var + 1e-12:
            best, best_var = chosen, var
    return sorted(best)


def d3s_sample_keep(advantages: Sequence[Sequence[float]], keep_fraction: float, min_keep: int = 2) -> list[list[bool]]:
    """For each group of advantages, which samples enter the loss: the ceil(keep_fraction * G) (at least
    `min_keep`) with the largest advantage variance. A group whose advantages are all 0 keeps everything
    (dropping samples that carry no signal saves nothing)."""
    if not 0 < keep_fraction <= 1:
        raise ValueError("keep_fraction must be in (0, 1]")
    out = []
    for group in advantages:
        n = len(group)
        k = min(n, max(min_keep, math.ceil(keep_fraction * n)))
        if all(a == 0 for a in group):
            out.append([True] * n)
            continue
        kept = set(max_variance_subset(group, k))
        out.append([i in kept for i in range(n)])
    return out


def d3s_token_mask(advantages, entropy, mask, keep_fraction: float):
    """The completion-token mask ([B, T]) restricted to the ceil(keep_fraction * real tokens) tokens with the
    largest |advantage| x entropy (ties at the threshold are all kept). `advantages` is [B] or [B, T].
    Tensor methods only, so no torch import here."""
    if not 0 < keep_fraction <= 1:
        raise ValueError("keep_fraction must be in (0, 1]")
    total = int(mask.sum().item())
    if keep_fraction >= 1 or total == 0:
        return mask
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    score = (adv.abs() * entropy).masked_fill(mask <= 0, -math.inf)
    k = max(1, math.ceil(keep_fraction * total))
    threshold = score.flatten().topk(k).values[-1]
    return mask * (score >= threshold).to(mask.dtype)


def d3s_keep_fraction(step: int, max_steps: int, start: float = 0.5, end: float = 1.0) -> float:
    """The share kept at `step` of `max_steps`: linear from `start` (aggressive) to `end` (keep all)."""
    if max_steps <= 1:
        return end
    t = min(1.0, max(0.0, step / (max_steps - 1)))
    return start + (end - start) * t
