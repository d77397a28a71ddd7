"""FAPO-style flawed-positive penalty: a completion can earn a reward the wrong way. Here: a
"kernel" answer that launches no custom kernel of its own (`kernel: torch` where a custom kernel
was asked), or one the static checks warned about. Early in training such answers are still
better than failures and help the model get off the ground; but rewarded fully, they become
what the policy converges to. Subtracting `flawed_penalty` from rewarded, flagged completions
keeps them above failures while ranking them below clean successes of the same group.

A reward function flags a completion by returning a dict with a truthy `"flawed"` entry (that
entry is a flag, never summed into the reward).
"""
from __future__ import annotations

from collections.abc import Sequence

FLAW_KEY = "flawed"


def flaws_of(result: dict, custom_kernel_expected: bool = True) -> list[str]:
    """Why an evaluation's success is suspect (empty when it is clean). `result` is `kopt eval --json`'s dict."""
    out = []
    if custom_kernel_expected and result.get("kernel") == "torch":
        out.append("kernel: torch (no custom kernel of its own)")
    for w in (result.get("checks") or {}).get("warnings") or []:
        out.append(f"warning: {w}")
    return out


def penalise_flawed(rewards: Sequence[float], flawed: Sequence[bool], penalty: float,
                    pass_threshold: float = 0.0) -> list[float]:
    """r - penalty for each flagged completion whose reward counts as a pass (> pass_threshold); others as is.
    Failures are not penalised further: their flaw is already priced in."""
    if penalty < 0:
        raise ValueError("flawed_penalty must be >= 0")
    if len(rewards) != len(flawed):
        raise ValueError(f"{len(rewards)} rewards but {len(flawed)} flaw flags")
    return [float(r) - penalty if f and r > pass_threshold else float(r) for r, f in zip(rewards, flawed)]
