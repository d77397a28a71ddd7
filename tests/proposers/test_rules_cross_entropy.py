"""Rule `cpu-fuse-cross-entropy`: cross entropy over class indices in one C++ pass per row
-- the task's value for mean and sum, the task's call for ignored targets, autograd or
options the kernel lacks, and kopt's evaluator agrees the solution is correct."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402
from tests.proposers.rule_solutions import load, watch  # noqa: E402

# written for this test: a classifier's loss over wide, shifted logits
TASK = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, scores, labels):
        return {call}


def get_inputs():
    return [torch.randn(37, 523) * 4.0 + 30.0, torch.randint(0, 523, (37,))]


def get_init_inputs():
    return []
'''
CALLS = {"mean": "F.cross_entropy(scores, labels)",
         "sum": "torch.nn.functional.cross_entropy(scores, labels, reduction='sum')"}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_cross_entropy_matches_the_task(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = TASK.format(call=CALLS[name])
    cand = apply("cpu-fuse-cross-entropy", src)
    assert not isinstance(cand, NoOp), cand
    ref_ns, ns = load(src), load(cand.code)
    used = watch(ns, "_kopt_cross_entropy")
    ref, new = ref_ns["Model"](), ns["ModelNew"]()
    for seed in range(3):
        torch.manual_seed(seed)
        inputs = ref_ns["get_inputs"]()
        with torch.no_grad():
            expected, got = ref(*inputs), new(*inputs)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert used == [True] * 3
    scores, labels = inputs
    labels[3] = -100  # ignore_index: PyTorch leaves the row out; the kernel declines
    with torch.no_grad():
        torch.testing.assert_close(new(scores, labels), ref(scores, labels))
    assert used[-1] is False
    assert new(scores.clone().requires_grad_(), labels).requires_grad


def test_the_evaluator_agrees(tmp_path, monkeypatch):
    from kopt.sandboxes.evaluator import EvalConfig, evaluate

    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = TASK.format(call=CALLS["mean"])
    (tmp_path / "task.py").write_text(src)
    (tmp_path / "sol.py").write_text(apply("cpu-fuse-cross-entropy", src).code)
    r = evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(rounds=3, max_timing_s=1, trials=2,
                                                                         quality_seeds=2, confirm=False))
    assert r["correct"], r


@pytest.mark.parametrize("call", ["F.cross_entropy(scores, labels, label_smoothing=0.1)",
                                  "F.cross_entropy(scores, labels, reduction='none')",
                                  "F.cross_entropy(scores * 2, labels)",
                                  "F.nll_loss(scores, labels)"])
def test_other_losses_are_left_alone(call):
    assert isinstance(apply("cpu-fuse-cross-entropy", TASK.format(call=call)), NoOp), call
