"""Rule `cpu-dim-reduction`: max / min values, amax, amin, argmax and argmin over one dim by
a C++ pass -- PyTorch's values and indices for every dim and keepdim (ties: the first
index; NaN: propagated, its first index), the call as written for what the kernel leaves
(a tuple dim, autograd, integers), and kopt's evaluator agrees."""
from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402
from tests.proposers.rule_solutions import load  # noqa: E402

# written for this test: the best-scoring class per position, and the peak score's margin
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, scores):
        best = torch.argmax(scores, dim=self.dim)
        peak = torch.max(scores, dim=self.dim, keepdim=True)[0]
        floor = scores.amin(1)
        return best, scores - peak, floor


def get_inputs():
    return [torch.randn(6, 37, 130)]


def get_init_inputs():
    return [1]
'''


@pytest.fixture(scope="module")
def reduce_helper(tmp_path_factory):
    cand = apply("cpu-dim-reduction", TASK)
    assert not isinstance(cand, NoOp), cand
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KOPT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kopt-cache"))
        return load(cand.code)


def _expected(op, x, dim, keepdim):
    out = getattr(torch, op)(x, dim=dim, keepdim=keepdim)
    return out[0] if op in ("max", "min") else out


def test_every_dim_matches_pytorch_with_ties_and_nans(reduce_helper):
    reduce, rng = reduce_helper["_kopt_reduce"], random.Random(3)
    for trial in range(300):
        shape = [rng.randint(1, 5) for _ in range(rng.randint(1, 4))]
        shape[rng.randrange(len(shape))] = rng.choice([1, 7, 16, 17, 40, 600])  # lanes, tails, blocks of 512
        x = torch.randint(-3, 4, shape).float() if trial % 3 == 0 else torch.randn(shape)  # ties
        if trial % 4 == 1:
            flat = x.view(-1)
            for _ in range(rng.randint(1, 3)):
                flat[rng.randrange(flat.numel())] = float("nan")
        dim, keepdim = rng.randrange(-len(shape), len(shape)), rng.random() < 0.5
        for op in ("max", "min", "amax", "amin", "argmax", "argmin"):
            expected, got = _expected(op, x, dim, keepdim), reduce(op, x, dim=dim, keepdim=keepdim)
            assert got.dtype == expected.dtype and got.shape == expected.shape, (op, shape, dim)
            assert torch.equal(got.nan_to_num(7.5), expected.nan_to_num(7.5)), (op, shape, dim, keepdim)


def test_the_kernel_runs_and_the_call_covers_the_rest(reduce_helper, monkeypatch):
    lib, ran = reduce_helper["_REDUCE_LIB"], []
    inner = lib.kopt_dim_reduce
    monkeypatch.setattr(lib, "kopt_dim_reduce", lambda *a: ran.append(1) or inner(*a))
    reduce, x = reduce_helper["_kopt_reduce"], torch.randn(4, 9, 5)
    assert torch.equal(reduce("amax", x, (0, 2)), torch.amax(x, (0, 2)))  # a tuple dim: as written
    assert torch.equal(reduce("argmax", x.double(), 1), torch.argmax(x.double(), 1))
    assert torch.equal(reduce("max", x.long(), 1), torch.max(x.long(), 1)[0])
    assert reduce("max", x.clone().requires_grad_(), 1).requires_grad
    assert not ran
    assert torch.equal(reduce("argmin", x, 2), torch.argmin(x, 2)) and ran == [1]


def test_the_solution_matches_the_task(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    cand = apply("cpu-dim-reduction", TASK)
    assert cand.code.count("_kopt_reduce(") >= 4  # the helper's def and the three calls
    ref_ns, ns = load(TASK), load(cand.code)
    torch.manual_seed(0)
    (x,) = ref_ns["get_inputs"]()
    with torch.no_grad():
        for want, got in zip(ref_ns["Model"](1)(x), ns["ModelNew"](1)(x)):
            assert torch.equal(want, got)


def test_the_evaluator_agrees(tmp_path, monkeypatch):
    from kopt.sandboxes.evaluator import EvalConfig, evaluate

    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "sol.py").write_text(apply("cpu-dim-reduction", TASK).code)
    r = evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(rounds=3, max_timing_s=1, trials=2,
                                                                         quality_seeds=2, confirm=False))
    assert r["correct"], r


def test_no_reduction_over_a_dim_is_a_noop():
    src = TASK.replace("torch.argmax(scores, dim=self.dim)", "scores.sum()").replace(
        "torch.max(scores, dim=self.dim, keepdim=True)[0]", "scores.max()").replace("scores.amin(1)", "scores")
    assert isinstance(apply("cpu-dim-reduction", src), NoOp)
