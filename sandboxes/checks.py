"""Output comparison and task-quality flags. Runs in kopt's process, never the candidate's."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Tolerance:
    atol: float = 1e-4
    rtol: float = 1e-4


# Half precision cannot meet fp32 tolerances; these follow the dtype's epsilon.
_DTYPE_TOL = {"float16": (1e-2, 1e-2), "bfloat16": (2e-2, 2e-2)}


@dataclass
class Comparison:
    ok: bool
    max_abs_err: float
    reason: str = ""
    detail: dict | None = None  # where values differ: errors and a few samples (for the agent's prompt)
    numeric: bool = False  # missed on values alone (structure, dtypes, NaN/Inf pattern matched)


def _number(v: float):
    """A JSON-safe number: non-finite values as text."""
    return v if math.isfinite(v) else repr(v)


def mismatch_detail(r, n, samples: int = 5) -> dict:
    """Largest absolute and relative errors, and the worst elements as [flat index, expected, got]."""
    import torch

    rf, nf = r.reshape(-1), n.reshape(-1)
    if rf.is_complex():
        rf, nf = torch.view_as_real(rf).reshape(-1), torch.view_as_real(nf).reshape(-1)
    rf, nf = rf.double(), nf.double()
    diff = (nf - rf).abs()
    both = torch.isfinite(rf) & torch.isfinite(nf)
    finite = torch.where(both, diff, torch.zeros((), dtype=diff.dtype))
    rel = finite / (rf.abs() + 1e-12)
    rank = torch.where(both, diff, torch.full((), math.inf, dtype=diff.dtype))
    rank = torch.where(torch.isnan(rf) & torch.isnan(nf), torch.zeros((), dtype=diff.dtype), rank)
    k = min(samples, rank.numel())
    worst = torch.topk(rank, k).indices.tolist() if k else []
    return {"max_abs_err": _number(float(finite.max())) if finite.numel() else 0.0,
            "max_rel_err": _number(float(rel.max())) if rel.numel() else 0.0,
            "samples": [[i, _number(float(rf[i])), _number(float(nf[i]))] for i in worst]}


def _flatten(x, path="out"):
    """(path, leaf) pairs; a dict's keys are part of the path, so two outputs with different
    key sets or key order differ in structure."""
    if isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            yield from _flatten(v, f"{path}[{i}]")
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from _flatten(v, f"{path}[{k!r}]")
    else:
        yield path, x


def same_value(a, b) -> bool:
    """Equality of two non-tensor leaves that cannot raise (a tensor or an odd object on
    either side is simply not equal)."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return False
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001 - an object whose == misbehaves is not equal
        return False


def compare(ref, new, tol: Tolerance) -> Comparison:
    """Compare one call's outputs: structure, shape, dtype, NaN/Inf, allclose and a
    relative-norm test (so an all-zeros output cannot pass when the reference's values
    are small but not zero)."""
    import torch

    ref_items, new_items = list(_flatten(ref)), list(_flatten(new))
    if len(ref_items) != len(new_items):
        return Comparison(False, float("inf"), f"returned {len(new_items)} outputs, expected {len(ref_items)}")
    for (path, _), (new_path, _) in zip(ref_items, new_items):
        if path != new_path:
            return Comparison(False, float("inf"), f"output structure differs: got {new_path}, expected {path}")
    worst = 0.0
    for (path, r), (_, n) in zip(ref_items, new_items):
        if not isinstance(r, torch.Tensor):
            if not same_value(r, n):
                return Comparison(False, float("inf"), f"{path}: got {n!r}, expected {r!r}")
            continue
        if type(n) is not torch.Tensor:
            return Comparison(False, float("inf"), f"{path}: got {type(n).__name__}, expected a torch.Tensor")
        if n.shape != r.shape:
            return Comparison(False, float("inf"), f"{path}: wrong shape {tuple(n.shape)}, expected {tuple(r.shape)}")
        if n.dtype != r.dtype:
            return Comparison(False, float("inf"), f"{path}: wrong dtype {n.dtype}, expected {r.dtype}")
        if not r.is_floating_point() and not r.is_complex():
            if not torch.equal(n, r):
                return Comparison(False, float("inf"), f"{path}: integer/bool values differ")
            continue
        if torch.equal(n, r):
            continue
        atol, rtol = _DTYPE_TOL.get(str(r.dtype).removeprefix("torch."), (tol.atol, tol.rtol))
        diff = (n - r).abs()
        # False wherever either side is NaN; where the reference is +-inf its tolerance is inf,
        # so only the same infinity matches there (any value passed: red team 20)
        within = (diff <= atol + rtol * r.abs()) & (torch.isfinite(r) | (n == r))
        if not bool(within.all()):
            c = _explain_mismatch(path, r, n, diff, atol, rtol)
            if c is not None:
                c.detail = mismatch_detail(r, n)
                c.numeric = c.max_abs_err != float("inf")
                return c
            diff = torch.where(torch.isfinite(r), diff, torch.zeros((), dtype=diff.dtype))
        err = float(diff.max()) if diff.numel() else 0.0
        worst = max(worst, err)
        ref_norm = float(torch.linalg.vector_norm(torch.where(torch.isfinite(r), r, 0), dtype=torch.float64)) \
            if not bool(within.all()) else float(torch.linalg.vector_norm(r, dtype=torch.float64))
        diff_norm = float(torch.linalg.vector_norm(diff, dtype=torch.float64))
        if ref_norm > 0 and diff_norm > max(10 * rtol, 1e-6) * ref_norm:
            return Comparison(False, err, f"{path}: relative error {diff_norm / ref_norm:.3g} too large",
                              mismatch_detail(r, n), numeric=True)
    return Comparison(True, worst)


def _explain_mismatch(path, r, n, diff, atol, rtol) -> Comparison | None:
    """The slow path: why elements differ; None when only matching NaN/Inf differ."""
    import torch

    ref_finite, new_finite = torch.isfinite(r), torch.isfinite(n)
    if bool((~new_finite & ref_finite).any()):
        return Comparison(False, float("inf"), f"{path}: NaN/Inf where the reference has none")
    if not torch.equal(torch.isnan(r), torch.isnan(n)):
        return Comparison(False, float("inf"), f"{path}: NaN pattern differs from the reference")
    if bool((torch.isinf(r) & (n != r)).any()):
        return Comparison(False, float("inf"), f"{path}: a value differs where the reference is +-inf")
    if not torch.allclose(n, r, atol=atol, rtol=rtol, equal_nan=True):
        finite_diff = torch.where(ref_finite, diff, torch.zeros((), dtype=diff.dtype))
        err = float(finite_diff.max()) if finite_diff.numel() else 0.0
        return Comparison(False, err, f"{path}: values differ (max abs err {err:.3g}, atol={atol}, rtol={rtol})")
    return None


def degeneracy(ref_outputs: list, inputs: list, atol: float = 1e-4, rtol: float = 1e-4) -> str | None:
    """Why a task's reference output cannot tell a real solution from a trivial one, or None.

    Flags outputs that are (numerically) constant across trials, ~zero everywhere, or
    equal to one of the inputs -- judged at the evaluator's own tolerance: a loss that moves
    by 0.005 around 8.3 is not "constant" when answers must match to 1e-4.
    """
    import torch

    tensors = [[t for _, t in _flatten(o) if isinstance(t, torch.Tensor) and t.is_floating_point()]
               for o in ref_outputs]
    if not tensors or not tensors[0]:
        return None
    first = [t.double() for t in tensors[0]]
    if all(float(t.abs().max()) <= atol if t.numel() else True for ts in tensors for t in ts):
        return f"reference output is within +-{atol:g} of zero for every trial (an all-zeros kernel passes)"
    if len(tensors) >= 3 and all(len(ts) == len(first) for ts in tensors):
        same_shape = [k for k in range(len(first)) if all(ts[k].shape == first[k].shape for ts in tensors)]
        means = {k: torch.stack([ts[k].double() for ts in tensors]).mean(dim=0) for k in same_shape}
        constant_passes = same_shape and all(  # the per-element mean, as a constant answer, within tolerance
            bool(((ts[k].double() - means[k]).abs() <= atol + rtol * ts[k].double().abs()).all())
            for ts in tensors for k in same_shape)
        if constant_passes and not all(
                torch.allclose(ts[k].double(), first[k], atol=1e-6) for ts in tensors[1:] for k in range(len(first))):
            return (f"reference output barely depends on the inputs (within atol={atol:g}, rtol={rtol:g} of a "
                    f"constant over {len(tensors)} seeds): a constant passes")
    if len(tensors) > 1 and all(
            len(ts) == len(first) and all(t.shape == f.shape and torch.allclose(t.double(), f, atol=1e-6)
                                          for t, f in zip(ts, first)) for ts in tensors[1:]):
        return "reference output does not change with the inputs (a constant passes)"
    for out, ins in zip(ref_outputs, inputs):
        outs = [t for _, t in _flatten(out) if isinstance(t, torch.Tensor)]
        if not any(any(isinstance(x, torch.Tensor) and x.shape == o.shape and x.dtype == o.dtype
                       and torch.equal(x, o) for x in ins) for o in outs):
            return None
    return "reference output equals one of its inputs (returning the input passes)"


@dataclass
class RoundCheck:
    verdict: str | None  # None: every call matched
    reason: str = ""
    max_abs_err: float = 0.0
    detail: dict | None = None  # mismatch_detail of the failing call, with "call" (1-based) added
    float64_calls: int = 0  # calls accepted by the second opinion (reference_error)


def check_round(ref_outs: list, ref_inputs_after: list | None, new_body: dict, tol: Tolerance,
                label: str, second_opinion=None) -> RoundCheck:
    """All of one round's checks: inputs untouched, every output, and the repeat pass
    (same input tensors refilled with the next call's values). SECOND_OPINION(i, new) says
    whether call i's output, which missed on values alone, is as accurate as the reference
    (`reference_error`)."""
    import torch

    outs = new_body.get("outs")
    if not isinstance(outs, list) or len(outs) != len(ref_outs):
        return RoundCheck("rejected", f"{label}: candidate returned outputs for the wrong number of calls")
    if ref_inputs_after is not None:
        after = new_body.get("inputs_after")
        if not isinstance(after, list) or len(after) != len(ref_inputs_after):
            return RoundCheck("incorrect", f"{label}: the candidate's inputs after the call are missing")
        for i, (r, n) in enumerate(zip(ref_inputs_after, after)):
            if not isinstance(n, list) or len(n) != len(r):  # zip alone compares nothing of an emptied list
                return RoundCheck("incorrect", f"{label}, call {i + 1}: the inputs came back as "
                                               f"{len(n) if isinstance(n, list) else type(n).__name__}, "
                                               f"not the {len(r)} given (modified in place?)")
            for j, (a, b) in enumerate(zip(r, n)):
                same = torch.equal(a, b) if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) \
                    and a.shape == b.shape and a.dtype == b.dtype else same_value(a, b)
                if not same:
                    return RoundCheck("incorrect", f"{label}, call {i + 1}: input {j} was modified in place")
    worst, rescued = 0.0, 0

    def missed(c: Comparison, call: int, n) -> str | None:
        """None where call's output passes; else the verdict: `unverified` where the second
        opinion ran out of time on an output near enough that it might have passed."""
        nonlocal rescued
        if c.ok:
            return None
        if c.numeric and second_opinion is not None and second_opinion(call, n):
            rescued += 1
            return None
        return "unverified" if getattr(second_opinion, "out_of_time", False) else "incorrect"

    def failed(verdict: str, reason: str) -> str:
        return reason if verdict == "incorrect" else (
            f"{reason}; kopt's float64 second opinion on it ran out of time (half the call time limit a round, "
            f"the call time limit in all): raise call_timeout_s ([eval] in a run config) to have it judged")

    for i, (r, n) in enumerate(zip(ref_outs, outs)):
        c = compare(r, n, tol)
        if v := missed(c, i, n):
            return RoundCheck(v, failed(v, f"{label}, call {i + 1}: {c.reason}"), worst, _located(c, i))
        worst = max(worst, c.max_abs_err)
    for i, n in enumerate(new_body.get("repeat") or []):
        c = compare(ref_outs[(i + 1) % len(ref_outs)], n, tol)
        if v := missed(c, (i + 1) % len(ref_outs), n):
            return RoundCheck(v, failed(v, f"{label}, call {i + 1} repeated with new values in the same input "
                                           f"tensors: {c.reason} (caches by pointer, or keeps state between calls)"),
                              worst, _located(c, i))
    return RoundCheck(None, "", worst, float64_calls=rescued)


def _located(c: Comparison, call: int) -> dict:
    return {"call": call + 1, **(c.detail or {"max_abs_err": _number(c.max_abs_err), "max_rel_err": None,
                                              "samples": []})}


def has_nonfinite(outs) -> bool:
    import torch

    if isinstance(outs, (list, tuple, dict)):
        return any(has_nonfinite(v) for v in (outs.values() if isinstance(outs, dict) else outs))
    return isinstance(outs, torch.Tensor) and outs.is_floating_point() and not bool(torch.isfinite(outs).all())


def insensitive_to_weights(torch, model, inputs: list, out) -> str | None:
    """Re-draw every floating parameter, run again, put the weights back: an output that did
    not move means the weights play no part (a solution may ignore them and still pass)."""
    params = [p for p in model.parameters() if p.is_floating_point() and p.numel()]
    if not params:
        return None
    saved = [p.detach().clone() for p in params]
    gen = torch.Generator().manual_seed(12345)
    try:
        with torch.no_grad():
            for p in params:
                p.copy_(torch.randn(p.shape, generator=gen).to(p.device, p.dtype) * (p.std() + 0.1))
            again = model(*[v.clone() if isinstance(v, torch.Tensor) else v for v in inputs])
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
    same = compare(out, again, Tolerance(1e-6, 1e-6)).ok
    return "reference output does not change when its weights are re-drawn" if same else None
