"""Which prompts get rollouts this step, and how many each. Pure functions plus two small state
holders (weights over difficulty groups, a replay buffer), all seeded through an explicit RNG.

A prompt teaches GRPO something only when its group disagrees, i.e. when its pass rate p is
strictly between 0 and 1. The recipes differ in how they bet on that:

- GDRO (group distributionally robust optimisation for RL reasoning): prompts are binned by their
  online pass rate; multiplicative weights move sampling mass toward the bins where the policy
  currently does worst (an exponentiated, bias-corrected moving average of each bin's failure
  rate), with a uniform floor so no bin is starved. Its rollout side hands a fixed mean budget
  out by the square-root rule: n_i proportional to sqrt(w_i p_i (1 - p_i)), which minimises the
  summed variance of the groups' mean estimates, sum_i w_i p_i (1 - p_i) / n_i, at a fixed total.
- VADE (variance-aware dynamic sampling): Thompson sampling from each prompt's Beta posterior of
  its pass rate; a prompt is scored by the Bernoulli variance p(1 - p) of its *sampled* p, so
  prompts that are probably informative are preferred while uncertain ones still get explored.
- DOTS (difficulty-targeted online selection with rollout replay): prefer prompts whose predicted
  pass rate is near a target (0.5: the most informative group), and re-use recent informative
  rollout groups from a small FIFO buffer to fill part of a batch without sampling afresh.
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field


def difficulty_bin(pass_rate: float, bins: int) -> int:
    """The bin of a pass rate in [0, 1] split into `bins` equal parts (p = 1 falls in the last)."""
    if bins < 1:
        raise ValueError("bins must be at least 1")
    p = min(1.0, max(0.0, float(pass_rate)))
    return min(bins - 1, int(p * bins))


def weighted_sample(weights: Sequence[float], k: int, rng: random.Random) -> list[int]:
    """k distinct indices drawn with probability proportional to weight (Efraimidis-Spirakis keys
    u^(1/w)). Zero-weight items are drawn only when fewer than k items have weight."""
    k = min(k, len(weights))
    keyed = []
    for i, w in enumerate(weights):
        u = rng.random()
        keyed.append((math.log(max(u, 1e-300)) / w if w > 0 else -math.inf, rng.random(), i))
    keyed.sort(reverse=True)
    return [i for _, _, i in keyed[:k]]


class GDROWeights:
    """Multiplicative weights over pass-rate bins. Each bin keeps a bias-corrected exponential moving
    average of its failure rate L_b; its weight is exp(eta * L_b) normalised, so the bins where the
    policy fails most get sampled most, without forgetting the others (`floor` of the mass is uniform)."""

    def __init__(self, bins: int = 4, eta: float = 2.0, ema: float = 0.8, floor: float = 0.2):
        if not 0 <= floor <= 1:
            raise ValueError("floor must be in [0, 1]")
        self.bins, self.eta, self.ema, self.floor = bins, eta, ema, floor
        self.avg = [0.0] * bins
        self.updates = [0] * bins

    def update(self, pass_rates: Sequence[float], observed: Sequence[float]) -> None:
        """Fold in one step: `observed[i]` is the fraction of passing rollouts of the prompt whose estimated
        pass rate (before this step) was `pass_rates[i]`."""
        per_bin: dict[int, list[float]] = {}
        for p, obs in zip(pass_rates, observed):
            per_bin.setdefault(difficulty_bin(p, self.bins), []).append(1.0 - float(obs))
        for b, losses in per_bin.items():
            self.avg[b] = self.ema * self.avg[b] + (1 - self.ema) * (sum(losses) / len(losses))
            self.updates[b] += 1

    def bin_losses(self) -> list[float]:
        """The moving averages with their start-up bias removed (a bin never seen counts as loss 0.5)."""
        return [a / (1 - self.ema ** n) if n else 0.5 for a, n in zip(self.avg, self.updates)]

    def bin_weights(self) -> list[float]:
        logits = [self.eta * x for x in self.bin_losses()]
        top = max(logits)
        w = [math.exp(x - top) for x in logits]
        s = sum(w)
        return [x / s for x in w]

    def prompt_weights(self, pass_rates: Sequence[float]) -> list[float]:
        """Sampling weight of each prompt: its bin's weight shared among the bin's prompts, mixed with a
        uniform floor."""
        n = len(pass_rates)
        if n == 0:
            return []
        bins = [difficulty_bin(p, self.bins) for p in pass_rates]
        size = [bins.count(b) for b in range(self.bins)]
        bw = self.bin_weights()
        occupied = sum(bw[b] for b in range(self.bins) if size[b])
        return [(1 - self.floor) * bw[b] / (size[b] * occupied) + self.floor / n for b in bins]

    def to_dict(self) -> dict:
        return {"bins": self.bins, "eta": self.eta, "ema": self.ema, "floor": self.floor, "avg": self.avg,
                "updates": self.updates}

    @classmethod
    def from_dict(cls, d: dict) -> GDROWeights:
        w = cls(d["bins"], d["eta"], d["ema"], d["floor"])
        w.avg, w.updates = list(d["avg"]), list(d["updates"])
        return w


def minimum_allocation(n: int, total: int, min_each: int, max_each: int | None) -> tuple[list[int], int]:
    """The floor every allocation rule starts from: (`min_each` per prompt, the per-prompt cap);
    a budget that cannot give every prompt its minimum is an error."""
    if total < min_each * n:
        raise ValueError(f"a budget of {total} rollouts cannot give {n} prompts {min_each} each")
    cap = max_each if max_each is not None else total
    return [min(min_each, cap)] * n, cap


def sqrt_allocation(pass_rates: Sequence[float], total: int, min_each: int = 2, max_each: int | None = None,
                    weights: Sequence[float] | None = None) -> list[int]:
    """Rollouts per prompt by the square-root rule under a fixed budget: each prompt gets `min_each`, the rest
    of `total` is shared in proportion to sqrt(w_i p_i (1 - p_i)) (largest remainders round it), capped at
    `max_each`. The whole budget is spent (the mean per prompt is fixed); with no informative prompt, evenly."""
    n = len(pass_rates)
    if n == 0:
        return []
    alloc, cap = minimum_allocation(n, total, min_each, max_each)
    w = [1.0] * n if weights is None else [max(0.0, float(x)) for x in weights]
    ps = [min(1.0, max(0.0, float(p))) for p in pass_rates]
    score = [math.sqrt(w[i] * ps[i] * (1 - ps[i])) for i in range(n)]
    if sum(score) <= 0:
        score = [1.0] * n
    left = total - sum(alloc)
    open_ = [i for i in range(n) if alloc[i] < cap and score[i] > 0]
    while left > 0 and open_:
        s = sum(score[i] for i in open_)
        share = {i: left * score[i] / s for i in open_}
        give = {i: min(cap - alloc[i], int(share[i])) for i in open_}
        for i in sorted(open_, key=lambda i: (-(share[i] - int(share[i])), i)):
            if sum(give.values()) >= left:
                break
            if give[i] < cap - alloc[i]:
                give[i] += 1
        for i, g in give.items():
            alloc[i] += g
        left -= sum(give.values())
        if not sum(give.values()):
            break
        open_ = [i for i in open_ if alloc[i] < cap]
    spare = [i for i in range(n) if alloc[i] < cap]
    while left > 0 and spare:  # informative prompts are all capped: the rest of the budget goes round-robin
        for i in list(spare):
            if left == 0:
                break
            alloc[i] += 1
            left -= 1
            if alloc[i] >= cap:
                spare.remove(i)
    return alloc


def thompson_scores(counts: Sequence[tuple[float, float]], rng: random.Random,
                    prior: tuple[float, float] = (1.0, 1.0)) -> list[float]:
    """VADE: for each prompt's (passes, fails), draw p ~ Beta(a + passes, b + fails) and score it by the
    Bernoulli variance p(1 - p): the chance-weighted worth of a group that disagrees."""
    out = []
    for s, f in counts:
        p = rng.betavariate(prior[0] + max(0.0, s), prior[1] + max(0.0, f))
        out.append(p * (1 - p))
    return out


def vade_select(counts: Sequence[tuple[float, float]], k: int, rng: random.Random) -> list[int]:
    """The k prompts with the highest Thompson-sampled informativeness."""
    scores = thompson_scores(counts, rng)
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]


def dots_select(pass_rates: Sequence[float], k: int, rng: random.Random, target: float = 0.5,
                temperature: float = 0.1) -> list[int]:
    """DOTS: k distinct prompts, drawn with weight exp(-|p - target| / temperature), so prompts predicted to
    sit near the target difficulty dominate while the rest keep a small chance (predictions go stale)."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    weights = [math.exp(-abs(float(p) - target) / temperature) for p in pass_rates]
    return weighted_sample(weights, k, rng)


def is_informative(rewards: Sequence[float], eps: float = 1e-9) -> bool:
    """A group teaches something only when its rewards disagree."""
    return len(rewards) > 1 and max(rewards) - min(rewards) > eps


@dataclass
class Replayed:
    prompt: int
    step: int
    payload: object  # whatever the trainer needs to put the group back into a batch
    rewards: list[float]
    uses: int = 0


@dataclass
class ReplayBuffer:
    """DOTS rollout replay: a FIFO of recent *informative* groups. `take` returns the freshest ones (each
    replayed at most `max_uses` times, never older than `max_age` steps), so part of a batch can be filled
    without new rollouts while staleness stays bounded."""

    capacity: int = 16
    max_age: int = 4
    max_uses: int = 1
    items: list[Replayed] = field(default_factory=list)

    def add(self, step: int, prompt: int, payload: object, rewards: Sequence[float]) -> bool:
        if not is_informative(rewards):
            return False
        self.items.append(Replayed(prompt, step, payload, [float(r) for r in rewards]))
        del self.items[:-self.capacity]
        return True

    def take(self, step: int, n: int, exclude: Sequence[int] = ()) -> list[Replayed]:
        self.items = [it for it in self.items if step - it.step <= self.max_age and it.uses < self.max_uses]
        skip = set(exclude)
        out: list[Replayed] = []
        for it in sorted(self.items, key=lambda it: -it.step):
            if len(out) >= n:
                break
            if it.prompt in skip:
                continue
            it.uses += 1
            skip.add(it.prompt)
            out.append(it)
        self.items = [it for it in self.items if it.uses < self.max_uses]
        return out

    def __len__(self) -> int:
        return len(self.items)
