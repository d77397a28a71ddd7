"""A second opinion on an output that missed the fixed tolerance: is it as accurate as the
reference itself?

A fixed atol/rtol judges the reference's float32 result as if it were exact. It is not: a
GEMM followed by a sum over its outputs is 2.7e-3 off the exact answer where the sums cancel,
and upstream level-2 #14's folded GEMV, nearer the exact answer (2.0e-3), was `incorrect`.

So when a float output misses, the reference worker runs the reference again (a copy of it):
in float64 on the same inputs and seed, for the answer; and in float32 and float64 on inputs
nudged by a couple of float32 ulps, NUDGES times, for its float32 error near these inputs at
each element (its conditioning: a sum that cancels errs a lot, a small exact one hardly at all). The output
passes where each element is within FACTOR times the larger of the reference's own error there
and that spread, and the whole within FACTOR times them in norm. An element borrows no slack
from another (red team 26: zeros for tiny exact sums beside large cancelling ones passed a
tensor-wide bound). The reference's own error must stay small (REF_ERROR_CAP of its norm; a
spread past it is left out), and a forward that draws random numbers gets no second opinion
(float64 draws are other numbers).
"""
from __future__ import annotations

import copy
import time

from kopt.sandboxes import harness_support
from kopt.sandboxes.checks import Tolerance, _flatten, same_value

FACTOR = 4.0  # a candidate may be this many times as far from the exact answer as the reference
REF_ERROR_CAP = 1e-2  # the reference's own float32 error, relative to its norm, above which no second opinion
# how much slower than the float32 forward the reference's float64 rerun may be (a convolution
# leaves oneDNN's fast path): the second opinion is asked only where an answer fits the time limit
FLOAT64_SLOWDOWN = 40


def within_reference_error(ref32, ref64, new, tol: Tolerance, spread=None) -> bool:
    """Whether NEW is as near the float64 answer REF64 as FACTOR times the reference's own error
    (REF32 against REF64) or its rounding SPREAD (a tensor per float leaf, or None) allows:
    each float element within atol + rtol * |ref64| + FACTOR * max(own error, spread) there,
    and the whole within FACTOR times the larger of the two in norm. Every other leaf must
    match exactly: dtype, shape, integer values, a non-tensor's value (the fixed comparison
    stopped at the first miss)."""
    import torch

    r32, r64, n = list(_flatten(ref32)), list(_flatten(ref64)), list(_flatten(new))
    if not (len(r32) == len(r64) == len(n)) or any(p != q for (p, _), (q, _) in zip(r32, n)):
        return False
    spreads = list(spread) if isinstance(spread, list) and len(spread) == len(r32) else [None] * len(r32)
    for (_, a), (_, b), (_, c), w in zip(r32, r64, n, spreads):
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
        if isinstance(w, torch.Tensor) and w.shape == a.shape:
            w = w.double().cpu()  # a spread past the cap, or not finite, is left out (red team 27)
            if bool(torch.isfinite(w).all()) and float(torch.linalg.vector_norm(w)) <= REF_ERROR_CAP * norm64:
                own = torch.maximum(own, w)
        off = (c - b).abs()
        if not bool((off <= tol.atol + tol.rtol * b.abs() + FACTOR * own).all()):
            return False
        if float(torch.linalg.vector_norm(off)) > FACTOR * float(torch.linalg.vector_norm(own)) + \
                max(10 * tol.rtol, 1e-6) * norm64:
            return False
    return True


NUDGES = 3  # float32 reruns on nudged inputs that measure each element's rounding spread


def _spread(worker, state: dict, i: int, seeds):
    """Per element of call i's outputs, the largest float32 error of the reference (a copy,
    against its float64 copy) on NUDGES sets of inputs nudged by about two float32 ulps: a
    sample of its rounding error near these inputs. Not how far the nudge moves the float32
    answer: at a jump (a threshold the inputs sit on) that is the function's own step, and a
    candidate off by it passed (red team 27). A list with a tensor per float leaf of the outputs
    (None elsewhere)."""
    torch = worker.torch
    gen = torch.Generator().manual_seed(i)
    worst = None
    for _ in range(NUDGES):
        x = [v.to(worker.device, copy=True) * (1 + 2.4e-7 * torch.randn(v.shape, generator=gen).to(v))
             if isinstance(v, torch.Tensor) and v.is_floating_point() else
             v.to(worker.device, copy=True) if isinstance(v, torch.Tensor) else copy.deepcopy(v)
             for v in state["sets"][i]]
        x64 = [v.to(torch.float64) if isinstance(v, torch.Tensor) and v.is_floating_point() else copy.deepcopy(v)
               for v in x]
        outs = []
        for model, args in ((state["model32"], x), (state["model"], x64)):
            if seeds is not None:
                torch.manual_seed(seeds[i % len(seeds)])
            with torch.no_grad():
                outs.append(model(*args))
        moved = [(o.double() - r.double()).abs() if isinstance(o, torch.Tensor) and o.is_floating_point()
                 and isinstance(r, torch.Tensor) and o.shape == r.shape else None
                 for (_, o), (_, r) in zip(_flatten(outs[0]), _flatten(outs[1]))]
        worst = moved if worst is None else [m if w is None else w if m is None else torch.maximum(w, m)
                                             for w, m in zip(worst, moved)]
    return worst


def _rng_states(torch) -> list:
    states = [torch.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states += torch.cuda.get_rng_state_all()
    return states


def answer_cost(ref_call_s: float) -> float:
    """Seconds one call's second opinion may take, for a reference call of REF_CALL_S: the
    float64 forward, NUDGES float32 and NUDGES float64 ones on nudged inputs, the copies.
    The gate once counted one float64 forward, and the budget ran out in the middle of a
    round of an honest candidate's calls (red team 28)."""
    return ((1 + NUDGES) * FLOAT64_SLOWDOWN + NUDGES + 2) * ref_call_s


def second_opinion(worker, tol: Tolerance, budget_s: float | None):
    """`check_round`'s SECOND_OPINION for the reference's harness WORKER (a SecondOpinion;
    with no budget, kopt found one answer too slow for the time limit: it answers nothing and
    says it ran out of time)."""
    return SecondOpinion(worker, tol, budget_s or 0.0)


class SecondOpinion:
    """Call i's output against the reference run again in float64 -- a copy of the model in
    float64, the call's inputs as kopt sent them (`harness_support.pristine_inputs`, copied
    again for each rerun), the call's seed; each call's once (its repeat pass is judged against
    the same answer), as long as BUDGET_S of them lasts. No opinion where that forward draws
    random numbers (float64 draws are other numbers: they would pass for rounding, red team 26)
    or fails (an op without float64). `out_of_time`: the last call refused had no answer only
    because the budget was spent, and was near enough that one could have passed it -- not a
    verdict of `incorrect` (red team 28: an exact candidate was, at a short time limit)."""

    def __init__(self, worker, tol: Tolerance, budget_s: float):
        self.worker, self.tol, self.budget_s = worker, tol, budget_s
        self.state: dict = {"answers": {}, "spent": 0.0}
        self.out_of_time = False

    @property
    def spent(self) -> float:
        """Seconds of float64 answers this opinion took (kopt caps them over an evaluation)."""
        return self.state["spent"]

    def _answer(self, i: int):
        worker, state, torch = self.worker, self.state, self.worker.torch
        if i not in state["answers"]:
            if state["spent"] >= self.budget_s:
                return None
            start = time.perf_counter()
            if "model" not in state:
                state.update(sets=harness_support.pristine_inputs(worker), model32=copy.deepcopy(worker.model))
                state["model"] = copy.deepcopy(state["model32"]).double()
            x = [v.to(worker.device, dtype=torch.float64 if v.is_floating_point() else v.dtype, copy=True)
                 if isinstance(v, torch.Tensor) else copy.deepcopy(v) for v in state["sets"][i]]
            seeds = worker._seeds(0)
            if seeds is not None:
                torch.manual_seed(seeds[i % len(seeds)])
            drawn = _rng_states(torch)
            with torch.no_grad():
                ref64 = state["model"](*x)
            random = any(not torch.equal(p, q) for p, q in zip(drawn, _rng_states(torch)))
            state["answers"][i] = None if random else (ref64, _spread(worker, state, i, seeds))
            state["spent"] += time.perf_counter() - start
        return state["answers"][i]

    def __call__(self, i: int, new) -> bool:
        self.out_of_time = False
        try:
            found = self._answer(i)
            if found is None:
                self.out_of_time = i not in self.state["answers"] and _within_reach(self.worker.outs[i], new)
                return False
            return within_reference_error(self.worker.outs[i], found[0], new, self.tol, found[1])
        except Exception:  # noqa: BLE001 - the reference in float64 is a best effort
            return False


def _within_reach(ref32, new) -> bool:
    """Whether NEW is near enough REF32 that a second opinion could pass it: the same leaves,
    every float one finite and off by at most FACTOR * REF_ERROR_CAP of its norm."""
    import torch

    r, n = list(_flatten(ref32)), list(_flatten(new))
    if len(r) != len(n) or any(p != q for (p, _), (q, _) in zip(r, n)):
        return False
    for (_, a), (_, c) in zip(r, n):
        if isinstance(a, torch.Tensor) and a.is_floating_point():
            if type(c) is not torch.Tensor or c.shape != a.shape or not bool(torch.isfinite(c).all()):
                return False
            a, c = a.double().cpu(), c.double().cpu()
            if float(torch.linalg.vector_norm(c - a)) > FACTOR * REF_ERROR_CAP * float(torch.linalg.vector_norm(a)):
                return False
    return True
