"""Stale rollouts (asynchronous evaluation, partial rollouts resumed a step later, replayed groups)
were sampled by an older policy. VCPO-style variance control keeps them from destabilising
training in two ways:

- importance-ratio truncation: each token's weight pi_now / pi_behaviour is capped at `cap`, so
  a token the current policy likes far more than the sampler did cannot dominate the step (a
  little bias for a lot less variance);
- effective-sample-size step scaling: with weights w, ESS = (sum w)^2 / sum w^2 counts how many
  on-policy samples the batch is worth; the step is scaled by ESS / n, so a batch that is mostly
  stale moves the policy less.

The tensor functions use tensor methods only (no torch import); ESS works on plain floats too.
"""
from __future__ import annotations

from collections.abc import Sequence


def truncated_importance_weights(logp_now, logp_behaviour, mask, cap: float = 2.0, per_sequence: bool = False):
    """Detached weights min(pi_now / pi_behaviour, cap): per token ([B, T], 0 off the mask), or with
    per_sequence=True one weight per completion ([B]) from the product of its tokens' ratios."""
    if cap <= 0:
        raise ValueError("cap must be > 0")
    log_ratio = (logp_now.detach() - logp_behaviour) * mask
    if per_sequence:
        return log_ratio.sum(-1).clamp(max=30.0).exp().clamp(max=cap)
    return log_ratio.clamp(max=30.0).exp().clamp(max=cap) * mask


def effective_sample_size(weights: Sequence[float]) -> float:
    """(sum w)^2 / sum w^2: n for equal weights, 1 when one weight dominates, 0 with no positive weight."""
    w = [max(0.0, float(x)) for x in weights]
    sq = sum(x * x for x in w)
    return sum(w) ** 2 / sq if sq > 0 else 0.0


def ess_step_scale(weights: Sequence[float], min_scale: float = 0.1) -> float:
    """ESS / n, floored at `min_scale` (a step is shrunk, never skipped); 1.0 for an empty batch."""
    if not weights:
        return 1.0
    return max(min_scale, min(1.0, effective_sample_size(weights) / len(weights)))
