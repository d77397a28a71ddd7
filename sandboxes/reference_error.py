"""A second opinion on an output that missed the fixed tolerance: is it as accurate as the
reference itself?

A fixed atol/rtol judges the reference's float32 result as if it were exact. Where a trial
makes the task ill-conditioned it is not: a BatchNorm after a convolution, fed inputs scaled
by 1e-3, subtracts a mean that dwarfs what is left, and any other order of the convolution's
sums (oneDNN's channels-last path, a fused kernel) lands 4e-4 away -- honest solutions of
upstream level-2 #3, 11, 21, 31, 52, 72, 73 and 77 were `incorrect` so (issue 20's run).

So when a float output misses, the reference worker runs the reference again in float64 on
the same inputs and seed (`harness.Worker._in_float64`) and accepts the candidate's output
where its distance from that float64 answer is within FACTOR times the reference's own
float32 error, element by element and in norm. The reference's own error must stay small
(REF_ERROR_CAP of its norm): a forward whose float64 rerun differs more (state it changed,
random draws that do not repeat, float32 arithmetic it forces) gets no second opinion.
"""
from __future__ import annotations

import copy

from kopt.sandboxes import protocol
from kopt.sandboxes.checks import Tolerance, _flatten

FACTOR = 4.0  # a candidate may be this many times as far from the exact answer as the reference
REF_ERROR_CAP = 1e-2  # the reference's own float32 error, relative to its norm, above which no second opinion


def within_reference_error(ref32, ref64, new, tol: Tolerance) -> bool:
    """Whether every floating output of NEW is within FACTOR times the reference's own error
    (REF32 against REF64) of REF64 -- elementwise on top of the usual tolerance, and in norm.
    Anything else (structure, dtypes, non-float leaves, non-finite values) must already match:
    here it is simply not accepted."""
    import torch

    r32, r64, n = list(_flatten(ref32)), list(_flatten(ref64)), list(_flatten(new))
    if not (len(r32) == len(r64) == len(n)):
        return False
    for (_, a), (_, b), (_, c) in zip(r32, r64, n):
        if not isinstance(a, torch.Tensor):
            continue  # compared exactly before
        if not (isinstance(b, torch.Tensor) and isinstance(c, torch.Tensor)) or not a.is_floating_point() \
                or a.shape != b.shape or a.shape != c.shape or not b.is_floating_point():
            return False
        a, b, c = a.double().cpu(), b.double().cpu(), c.double().cpu()
        if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all()) and bool(torch.isfinite(c).all())):
            return False
        own = (a - b).abs()
        norm64 = float(torch.linalg.vector_norm(b))
        own_norm = float(torch.linalg.vector_norm(own))
        if own_norm > REF_ERROR_CAP * norm64:
            return False
        off = (c - b).abs()
        slack = tol.atol + tol.rtol * b.abs() + FACTOR * (float(own.max()) if own.numel() else 0.0)
        if not bool((off <= slack).all()):
            return False
        if float(torch.linalg.vector_norm(off)) > FACTOR * own_norm + max(10 * tol.rtol, 1e-6) * norm64:
            return False
    return True


def second_opinion(worker, tol: Tolerance):
    """`check_round`'s SECOND_OPINION for the reference's harness WORKER: call i's output
    against the reference run again in float64 -- a copy of the model in float64, the call's
    inputs as they arrived (decoded again: a forward may write into its own), the call's seed.
    Any failure there (an op without float64, a model that will not convert) is no opinion."""
    torch = worker.torch
    state: dict = {}

    def judge(i: int, new) -> bool:
        try:
            if "model" not in state:
                sets = protocol.decode(worker.payload if worker.mapped is None else worker.mapped, torch)
                state.update(sets=sets, model=copy.deepcopy(worker.model).double())
            x = [v.to(worker.device).double() if isinstance(v, torch.Tensor) and v.is_floating_point()
                 else v.to(worker.device) if isinstance(v, torch.Tensor) else v for v in state["sets"][i]]
            seeds = worker._seeds(0)
            if seeds is not None:
                torch.manual_seed(seeds[i % len(seeds)])
            with torch.no_grad():
                ref64 = state["model"](*x)
            return within_reference_error(worker.outs[i], ref64, new, tol)
        except Exception:  # noqa: BLE001 - the reference in float64 is a best effort
            return False
    return judge
