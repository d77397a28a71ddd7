"""A reward function may return, per completion, a float or a dict of named components
({"correct": 1.0, "speedup": 0.6, "format": 0.1}); a dict may also carry the evaluator's
`"flawed"` flag. This splits such output into what the trainer needs: the scalar reward (the
sum of the components), the components themselves (for GDPO), and the flags (for FAPO)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kopt.rl_finetune.recipes.flawed import FLAW_KEY


@dataclass(frozen=True)
class RewardParts:
    totals: list[float]
    components: list[dict[str, float]] | None  # None when the reward function returned plain floats
    flawed: list[bool]


def split_rewards(raw: Sequence) -> RewardParts:
    """Floats stay as they are; dicts are summed over their components (the flag excluded)."""
    totals, comps, flawed = [], [], []
    any_dict = False
    for i, x in enumerate(raw):
        if isinstance(x, Mapping):
            any_dict = True
            parts = {str(k): float(v) for k, v in x.items() if k != FLAW_KEY}
            flawed.append(bool(x.get(FLAW_KEY, False)))
        else:
            parts = {"reward": float(x)}
            flawed.append(False)
        bad = [k for k, v in parts.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"reward_fn returned a non-finite reward ({bad[0]}={parts[bad[0]]}) for completion {i}")
        totals.append(sum(parts.values()))
        comps.append(parts)
    return RewardParts(totals, comps if any_dict else None, flawed)
