"""Rule `cpu-fuse-triplet-loss`: a TripletMarginLoss call in one C++ pass per row -- the
module's value for its margin and reduction, the module itself for options the kernel
lacks or autograd, and kopt's evaluator agrees the solution is correct."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402
from tests.proposers.rule_solutions import load  # noqa: E402

# written for this test: embeddings of a query, a match and a non-match, projected first
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, margin):
        super().__init__()
        self.criterion = nn.TripletMarginLoss(margin=margin{kwargs})

    def forward(self, q, pos, neg):
        q = q * 1.5
        return self.criterion(q, pos, neg) + 0.0


def get_inputs():
    return [torch.randn(29, 700) * 0.3, torch.randn(29, 700) * 0.3, torch.randn(29, 700) * 0.31]


def get_init_inputs():
    return [0.7]
'''
CASES = {"mean": "", "sum_small_eps": ", reduction='sum', eps=1e-3"}


def _counted(ns, monkeypatch):
    ran = []
    inner = ns["_TRIPLET_LIB"].kopt_triplet
    monkeypatch.setattr(ns["_TRIPLET_LIB"], "kopt_triplet", lambda *a: ran.append(1) or inner(*a))
    return ran


@pytest.mark.parametrize("name", sorted(CASES))
def test_triplet_loss_matches_the_module(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = TASK.format(kwargs=CASES[name])
    cand = apply("cpu-fuse-triplet-loss", src)
    assert not isinstance(cand, NoOp), cand
    ref_ns, ns = load(src), load(cand.code)
    ran = _counted(ns, monkeypatch)
    ref, new = ref_ns["Model"](0.7), ns["ModelNew"](0.7)
    for seed in range(3):
        torch.manual_seed(seed)
        inputs = ref_ns["get_inputs"]()
        with torch.no_grad():
            expected, got = ref(*inputs), new(*inputs)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert len(ran) == 3
    new.criterion.p = 1.0  # another norm: the module runs
    ref.criterion.p = 1.0
    with torch.no_grad():
        torch.testing.assert_close(new(*inputs), ref(*inputs))
    assert len(ran) == 3
    assert new(inputs[0].clone().requires_grad_(), *inputs[1:]).requires_grad


def test_the_evaluator_agrees(tmp_path, monkeypatch):
    from kopt.sandboxes.evaluator import EvalConfig, evaluate

    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = TASK.format(kwargs="")
    (tmp_path / "task.py").write_text(src)
    (tmp_path / "sol.py").write_text(apply("cpu-fuse-triplet-loss", src).code)
    r = evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(rounds=3, max_timing_s=1, trials=2,
                                                                         quality_seeds=2, confirm=False))
    assert r["correct"], r


def test_no_triplet_module_is_a_noop():
    src = TASK.format(kwargs="").replace("nn.TripletMarginLoss(margin=margin)", "nn.CosineEmbeddingLoss(margin)")
    assert isinstance(apply("cpu-fuse-triplet-loss", src), NoOp)
