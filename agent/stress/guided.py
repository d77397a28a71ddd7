"""Structured generators chosen and mixed by measured cost, within an inferred grammar.

1. every generator prints two instances at a small scale, costed: a cheap ranking, not
   counted in the budget;
2. the three best are grown, each on its own, towards the grammar's largest size, each step
   as far as a quadratic program would stay under MAX_COST (at most x64), stopping once that
   is less than x1.5 or the score drops -- so the search never waits on runs far longer than it
   needs to tell inputs apart;
3. the rest of the budget draws generators at their scale with odds rising with their score
   so far, half the time splicing in the best instance of another generator.
Scores are costs over the cost of a random input of the same shape (the search's `score`).
Every instance goes through the search's `consider` (validator, then cost).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from kopt.agent.stress.infer import Grammar
from kopt.agent.stress.structures import generators, mix

SMALL_SCALE = 128
MIN_STEP = 1.5
MAX_JUMP = 64


@dataclass
class Arm:
    """One generator's best instance so far: its score (cost over random), cost and scale."""

    scale: int
    seed: int = 0     # the seed of the generator's own choices (modulus, pattern length, ...)
    score: float = 0.0
    cost: float = 0.0
    inst: object = None


def guided_search(search, g: Grammar, budget: int, max_cost: float) -> int:
    """Spend up to BUDGET costings of SEARCH on generator instances; returns the costings spent."""
    gens = generators(g)
    rng = search.rng
    lo, hi = g.size
    arms = {name: Arm(max(lo, min(hi, SMALL_SCALE))) for name in gens}
    spent = 0

    def attempt(name: str, scale: int, seed: int | None = None, other: str | None = None):
        """Generator NAME at SCALE (with its choices from SEED, new ones by default), spliced
        with OTHER's best instance when given; the arm keeps it when it scores higher."""
        nonlocal spent
        seed = rng.randrange(1 << 30) if seed is None else seed
        inst = gens[name](scale, random.Random(seed))
        if other is not None:
            inst = mix(inst, arms[other].inst, rng)
        before = search.meter.runs
        found = search.consider(g.family.text(inst), f"{name}{'+' + other if other else ''} (scale {scale})")
        spent += search.meter.runs - before
        arm = arms[name]
        if found is not None and found.rank > arm.score:
            arm.score, arm.cost, arm.inst, arm.scale, arm.seed = found.rank, found.cost, inst, scale, seed
        return found

    for name in [*gens, *gens]:  # 1. every generator twice (two draws of its choices), small
        attempt(name, arms[name].scale)
    spent = 0
    ranked = sorted((k for k in arms if k != "random" and arms[k].inst is not None), key=lambda k: -arms[k].score)
    for name in ranked[:3]:  # 2. the three best, each grown while it stays affordable
        arm, cost = arms[name], arms[name].cost
        while arm.scale < hi and math.sqrt(max_cost / max(cost, 1.0)) >= MIN_STEP and spent < budget:
            scale = min(hi, int(arm.scale * min(MAX_JUMP, math.sqrt(max_cost / max(cost, 1.0)))))
            before = arm.score
            found = attempt(name, scale, arm.seed)  # the same choices, larger
            if found is None or found.rank < 0.9 * before:
                break
            cost = found.cost
        search.progress(f"{name}: scale {arm.scale}, {arm.cost:,.0f} {search.meter.metric}, "
                        f"{arm.score:.1f}x a random input of its shape")
    tries = 0
    while spent < budget and tries < 4 * budget:  # 3. generators drawn by their measured worth
        tries += 1
        names = [k for k in arms if arms[k].inst is not None]
        if not names:
            return spent
        name = rng.choices(names, [max(arms[k].score, 0.01) for k in names])[0]
        attempt(name, arms[name].scale, other=rng.choice(names) if rng.random() < 0.5 else None)
    return spent
