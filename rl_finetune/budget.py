"""How a step's rollouts are shared among its prompts. Pure functions plus a small pass-rate tally.

A group whose completions all pass (or all fail) has zero advantage everywhere: its rollouts,
often the most expensive part of a step (compile + run), teach nothing. The knapsack rule
treats each prompt as an item whose value grows with its rollouts: the chance that a group of
n is informative, 1 - p^n - (1-p)^n, times how much a pass/fail contrast is worth, p(1-p).
Both vanish at p=0 and p=1, so prompts the model always solves or never solves get only the
minimum, and the rest of the budget goes where a group is likely to disagree. The value is
concave in n, so handing out rollouts one at a time to the best marginal gain is optimal.
"""
from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

from kopt.rl_finetune.recipes.selection import minimum_allocation, sqrt_allocation

MIN_GAIN = 1e-9  # below this, a further rollout is not worth spending


def informative_value(p: float, n: int) -> float:
    """Expected worth of n rollouts of a prompt with pass rate p."""
    if n <= 0:
        return 0.0
    return (1.0 - p**n - (1.0 - p) ** n) * p * (1.0 - p)


def knapsack_allocation(pass_rates: Sequence[float], total: int, min_each: int = 2,
                        max_each: int | None = None) -> list[int]:
    """Rollouts per prompt: every prompt gets `min_each`, the rest of `total` goes one at a time to the prompt
    with the largest marginal value, up to `max_each`. Rollouts that would add no value are not spent, so the
    sum is at most `total` (less when every prompt is already solved or hopeless)."""
    n = len(pass_rates)
    if n == 0:
        return []
    alloc, cap = minimum_allocation(n, total, min_each, max_each)
    left = total - sum(alloc)
    ps = [min(1.0, max(0.0, float(p))) for p in pass_rates]

    def gain(i: int) -> float:
        return informative_value(ps[i], alloc[i] + 1) - informative_value(ps[i], alloc[i])

    heap = [(-gain(i), i) for i in range(n) if alloc[i] < cap]
    heapq.heapify(heap)
    while left > 0 and heap:
        neg, i = heapq.heappop(heap)
        if -neg <= MIN_GAIN:
            break
        alloc[i] += 1
        left -= 1
        if alloc[i] < cap:
            heapq.heappush(heap, (-gain(i), i))
    return alloc


def fixed_allocation(pass_rates: Sequence[float], total: int, min_each: int = 2,
                     max_each: int | None = None) -> list[int]:
    """The same group size for every prompt (plain GRPO)."""
    n = len(pass_rates)
    return [total // n] * n if n else []


BudgetFn = Callable[..., list[int]]

BUDGETS: dict[str, BudgetFn] = {
    "fixed": fixed_allocation,
    "knapsack": knapsack_allocation,
    "gdro": sqrt_allocation,  # GDRO's square-root rule; the trainer passes its difficulty-group weights
}


class PassRates:
    """Per-prompt pass-rate estimates from the rollouts seen so far: a Beta(1, 1) prior, so an unseen prompt
    is p=0.5 (worth sampling), with old evidence decayed so a prompt the model learns to solve is noticed."""

    def __init__(self, decay: float = 0.8):
        self.decay = decay
        self.counts: dict[int, tuple[float, float]] = {}

    def update(self, prompt: int, passes: int, n: int) -> None:
        s, f = self.counts.get(prompt, (0.0, 0.0))
        self.counts[prompt] = (s * self.decay + passes, f * self.decay + (n - passes))

    def estimate(self, prompt: int) -> float:
        s, f = self.counts.get(prompt, (0.0, 0.0))
        return (s + 1.0) / (s + f + 2.0)

    def to_dict(self) -> dict:
        return {"decay": self.decay, "counts": {str(k): list(v) for k, v in self.counts.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> PassRates:
        pr = cls(d.get("decay", 0.8))
        pr.counts = {int(k): (float(v[0]), float(v[1])) for k, v in d.get("counts", {}).items()}
        return pr
