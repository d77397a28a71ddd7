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
import time

from kopt.sandboxes import harness_support
from kopt.sandboxes.checks import Tolerance, _flatten, same_value

FACTOR = 4.0  # a candidate may be this many times as far from the exact answer as the reference
REF_ERROR_CAP = 1e-2  # the reference's own float32 error, relative to its norm, above which no second opinion


def within_reference_error(ref32, ref64, new, tol: Tolerance) -> bool:
    """Whether NEW is as near the float64 answer REF64 as FACTOR times the reference's own error
    (REF32 against REF64) allows: each float element within atol + rtol * |ref64| + FACTOR *
    (the largest own error among elements of its magnitude + the reference's relative error
    rate * |ref64|) -- a small element borrows no slack from a large ill-conditioned one (red
    team 26) -- and the whole within FACTOR times the reference's error in norm. Every other
    leaf must match exactly: its dtype, shape, integer values, a non-tensor's value (the fixed
    comparison stopped at the first miss)."""
    import torch

    r32, r64, n = list(_flatten(ref32)), list(_flatten(ref64)), list(_flatten(new))
    if not (len(r32) == len(r64) == len(n)) or any(p != q for (p, _), (q, _) in zip(r32, n)):
        return False
    for (_, a), (_, b), (_, c) in zip(r32, r64, n):
        if not isinstance(a, torch.Tensor):
            if not same_value(a, c):
                return False
            continue
        if type(c) is not torch.Tensor or c.dtype != a.dtype or c.shape != a.shape:
            return False
        if not a.is_floating_point():
            if not torch.equal(a, c):
                return False
            continue
        if not isinstance(b, torch.Tensor) or b.shape != a.shape or not b.is_floating_point():
            return False
        a, b, c = a.double().cpu(), b.double().cpu(), c.double().cpu()
        if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all()) and bool(torch.isfinite(c).all())):
            return False
        own = (a - b).abs()
        norm64, own_norm = float(torch.linalg.vector_norm(b)), float(torch.linalg.vector_norm(own))
        if own_norm > REF_ERROR_CAP * norm64:
            return False
        rate = own_norm / norm64 if norm64 > 0 else 0.0
        off = (c - b).abs()
        if not bool((off <= tol.atol + tol.rtol * b.abs() + FACTOR * (_local_error(own, b) + rate * b.abs())).all()):
            return False
        if float(torch.linalg.vector_norm(off)) > FACTOR * own_norm + max(10 * tol.rtol, 1e-6) * norm64:
            return False
    return True


def _local_error(own, b):
    """Per element, the reference's largest own error among the elements of about its magnitude
    (within a factor of 4 either way): one element's own error is a single draw of its rounding
    (another order of the same sums lands elsewhere), the largest of its like is the scale; an
    element of another magnitude lends it none (red team 26: tiny exact sums beside large
    cancelling ones)."""
    import torch

    k = torch.floor(torch.log2(b.abs().clamp_min(1e-300))).clamp(-1100, 1100).long() + 1100
    worst = torch.zeros(2201, dtype=own.dtype).scatter_reduce(0, k.reshape(-1), own.reshape(-1), reduce="amax")
    wide = worst.clone()
    for d in (1, 2):
        wide[d:] = torch.maximum(wide[d:], worst[:-d])
        wide[:-d] = torch.maximum(wide[:-d], worst[d:])
    return wide[k]


def _rng_states(torch) -> list:
    states = [torch.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states += torch.cuda.get_rng_state_all()
    return states


def second_opinion(worker, tol: Tolerance, budget_s: float | None):
    """`check_round`'s SECOND_OPINION for the reference's harness WORKER: call i's output
    against the reference run again in float64 -- a copy of the model in float64, the call's
    inputs as kopt sent them (`harness_support.pristine_inputs`, copied again for each rerun),
    the call's seed; each call's once (its repeat pass is judged against the same answer), as
    long as BUDGET_S of float64 forwards lasts. No opinion where that forward draws random
    numbers (float64 draws are other numbers: they would pass for rounding, red team 26) or
    fails (an op without float64). None without a budget (kopt found one forward too slow)."""
    if not budget_s:
        return None
    torch = worker.torch
    state: dict = {"answers": {}, "spent": 0.0}

    def answer(i: int):
        if i not in state["answers"]:
            if state["spent"] > budget_s:
                return None
            start = time.perf_counter()
            if "model" not in state:
                state.update(sets=harness_support.pristine_inputs(worker), model=copy.deepcopy(worker.model).double())
            x = [v.to(worker.device, dtype=torch.float64 if v.is_floating_point() else v.dtype, copy=True)
                 if isinstance(v, torch.Tensor) else copy.deepcopy(v) for v in state["sets"][i]]
            seeds = worker._seeds(0)
            if seeds is not None:
                torch.manual_seed(seeds[i % len(seeds)])
            drawn = _rng_states(torch)
            with torch.no_grad():
                ref64 = state["model"](*x)
            random = any(not torch.equal(p, q) for p, q in zip(drawn, _rng_states(torch)))
            state["answers"][i] = None if random else ref64
            state["spent"] += time.perf_counter() - start
        return state["answers"][i]

    def judge(i: int, new) -> bool:
        try:
            ref64 = answer(i)
            return ref64 is not None and within_reference_error(worker.outs[i], ref64, new, tol)
        except Exception:  # noqa: BLE001 - the reference in float64 is a best effort
            return False
    return judge
