"""Reward of one proposal from its evaluation (architecture §8). Pure functions."""
from __future__ import annotations

import math
from dataclasses import dataclass

VERIFIED = ("faster", "same", "slower")


@dataclass(frozen=True)
class RewardConfig:
    failed: float = 0.0  # did not compile or run
    wrong: float = 0.1  # ran but incorrect or rejected
    base: float = 0.3
    log2_clip: tuple[float, float] = (-1.0, 3.0)


def reward(result: dict, cfg: RewardConfig = RewardConfig()) -> float | None:
    """0 if it did not compile/run, 0.1 if wrong or rejected, else 0.3 + clip(log2 speedup).

    Returns None for an evaluation that verified nothing (`unverified`): no reward is
    better than a made-up one.
    """
    verdict = result.get("verdict")
    if verdict in VERIFIED and result.get("correct") and result.get("speedup"):
        lo, hi = cfg.log2_clip
        return cfg.base + min(hi, max(lo, math.log2(result["speedup"])))
    if verdict in ("incorrect", "rejected"):
        return cfg.wrong
    if verdict in ("compile_error", "runtime_error", "timeout"):
        return cfg.failed
    return None
