"""The GRPO objective, token by token: clipped surrogate, KL to the reference, aggregation.

Functions of tensors shaped [completions, tokens] with a 0/1 mask of real completion tokens.
They use tensor methods only, so this module imports without torch (the config names its
aggregations) and the tests call each piece directly.
"""
from __future__ import annotations

from collections.abc import Callable


def clipped_surrogate(logp, old_logp, advantages, clip_eps: float = 0.2):
    """Per-token PPO loss -min(ratio * A, clip(ratio, 1-eps, 1+eps) * A), with ratio = pi / pi_old.

    `advantages` is one value per completion ([B]) or per token ([B, T]). Returns (loss [B, T], clipped
    [B, T] bool: where the clipped term was the one taken, i.e. the gradient is cut)."""
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    ratio = (logp - old_logp).exp()
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv
    return -unclipped.minimum(clipped), clipped < unclipped


def kl_to_reference(logp, ref_logp):
    """Per-token k3 estimate of KL(pi || pi_ref): exp(d) - d - 1 with d = log pi_ref - log pi. Unbiased,
    never negative, and zero exactly where the two models agree."""
    d = ref_logp - logp
    return d.exp() - d - 1.0


def token_mean(per_token, mask):
    """DAPO: every real token of the batch weighs the same, so long completions are not discounted."""
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)


def sequence_mean(per_token, mask):
    """Original GRPO: mean over each completion's tokens, then over completions."""
    per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
    has_tokens = (mask.sum(-1) > 0).to(per_seq.dtype)
    return (per_seq * has_tokens).sum() / has_tokens.sum().clamp(min=1.0)


LOSS_AGGS: dict[str, Callable] = {
    "token-mean": token_mean,
    "sequence": sequence_mean,
}


def grpo_loss(logp, old_logp, advantages, mask, clip_eps: float = 0.2, beta: float = 0.0, ref_logp=None,
              agg: str = "token-mean"):
    """The scalar to minimise and what to log about it: (loss, {"kl", "clip_frac"}) (floats, detached)."""
    per_token, was_clipped = clipped_surrogate(logp, old_logp, advantages, clip_eps)
    stats = {"clip_frac": float(token_mean(was_clipped.to(mask.dtype), mask).detach())}
    if ref_logp is not None:
        kl = kl_to_reference(logp, ref_logp)
        stats["kl"] = float(token_mean(kl, mask).detach())
        if beta:
            per_token = per_token + beta * kl
    return LOSS_AGGS[agg](per_token, mask), stats
