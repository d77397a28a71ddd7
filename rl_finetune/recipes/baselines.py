"""Baselines and reward normalisation beyond the group mean/std of plain GRPO.

ReMax (Li et al., 2023): the baseline of a sampled completion is the reward of the *greedy*
completion of the same prompt. It costs one extra (deterministic) rollout per prompt instead of
a critic, and unlike the group mean it still gives a signal when every sample of a group ties
(all fail while greedy passes, or the reverse). On its own (r - r_greedy) the baseline is one
rollout's reward: noisy when the reward is, far from the group's mean when the greedy answer is
the odd one out (every sample then moves by the same large offset, which is variance, not
signal), and unscaled, so groups with a wide reward range outweigh the rest. On the toy suite
that learned far less than plain GRPO; so by default the greedy reward joins the group's
baseline as one more member (mean and std over the samples plus the greedy one): a tied group
still learns when greedy differs, with the group's scale and a baseline near its mean.

GDPO (group reward-decoupled normalisation): when a reward is a sum of parts (correctness,
speedup, format), normalising the sum lets the part with the widest spread decide every
advantage. Normalising each part within its group first, then summing and normalising the sum
over the whole batch, gives each part an equal say and keeps the update's scale fixed.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from kopt.rl_finetune.advantages import EPS, Advantages


def remax_advantages(rewards: Sequence[float], greedy_reward: float, pooled: bool = True,
                     eps: float = EPS) -> Advantages:
    """pooled (the default): (r - m) / s, with m and s the mean and std of the samples' rewards plus the
    greedy one, so a group whose samples all tie still moves when greedy differs; all equal gives zeros.
    pooled=False: the paper's r - r_greedy, unscaled (samples that tie the greedy answer get 0)."""
    if not math.isfinite(greedy_reward):
        raise ValueError(f"greedy reward must be finite (got {greedy_reward})")
    r = [float(x) for x in rewards]
    if not pooled:
        return Advantages([x - float(greedy_reward) for x in r], [True] * len(r))
    pool = [*r, float(greedy_reward)]
    mean, std = statistics.fmean(pool), statistics.pstdev(pool)
    if std <= eps:
        return Advantages([0.0] * len(r), [True] * len(r))
    return Advantages([(x - mean) / std for x in r], [True] * len(r))


def _standardise(values: Sequence[float], eps: float = EPS) -> list[float]:
    """(x - mean) / std; all-equal (or single) values carry no contrast and give zeros."""
    v = [float(x) for x in values]
    if len(v) < 2:
        return [0.0] * len(v)
    mean, std = statistics.fmean(v), statistics.pstdev(v)
    if std <= eps:
        return [0.0] * len(v)
    return [(x - mean) / std for x in v]


def gdpo_advantages(component_rewards: Sequence[Mapping[str, Sequence[float]]],
                    weights: Mapping[str, float] | None = None, eps: float = EPS) -> list[Advantages]:
    """One `Advantages` per group. `component_rewards[g][name]` lists component `name`'s reward of each
    completion of group g. Each component is standardised within its group, the (weighted) parts are
    summed, and the sums are standardised once more over every completion of the batch."""
    sums: list[list[float]] = []
    for g, parts in enumerate(component_rewards):
        lengths = {name: len(v) for name, v in parts.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"group {g}: reward components have different lengths {lengths}")
        n = next(iter(lengths.values()), 0)
        total = [0.0] * n
        for name, values in parts.items():
            if any(not math.isfinite(float(x)) for x in values):
                raise ValueError(f"group {g}: non-finite value in reward component {name!r}")
            w = 1.0 if weights is None else float(weights.get(name, 1.0))
            for i, z in enumerate(_standardise(values, eps)):
                total[i] += w * z
        sums.append(total)
    flat = [x for s in sums for x in s]
    if len(flat) < 2 or statistics.pstdev(flat) <= eps:
        return [Advantages([0.0] * len(s), [True] * len(s)) for s in sums]
    mean, std = statistics.fmean(flat), statistics.pstdev(flat)
    return [Advantages([(x - mean) / std for x in s], [True] * len(s)) for s in sums]


def component_dicts_to_groups(per_completion: Sequence[Mapping[str, float]],
                              counts: Sequence[int]) -> list[dict[str, list[float]]]:
    """Reshape a reward function's per-completion dicts ({"correct": 1, "speedup": 0.4}) into per-group
    component lists, as `gdpo_advantages` takes them. A component missing from a completion counts 0."""
    if sum(counts) != len(per_completion):
        raise ValueError(f"{len(per_completion)} reward dicts for {sum(counts)} completions")
    names = sorted({k for d in per_completion for k in d})
    groups, start = [], 0
    for n in counts:
        chunk = per_completion[start:start + n]
        groups.append({k: [float(d.get(k, 0.0)) for d in chunk] for k in names})
        start += n
    return groups
