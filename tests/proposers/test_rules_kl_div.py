"""Rule `cpu-fuse-loss-reduction` on F.kl_div: one pass of t * (log t - input), reduced as
the call's `reduction` says, with t = 0 adding 0 as xlogy does; a log-space target or an
unknown reduction is left alone."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402
from tests.proposers.rule_solutions import load, watch  # noqa: E402

# written for this test: a divergence between a scaled softmax and a target with zeros
TASK = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, p, t):
        return {call}


def get_inputs():
    t = torch.rand(12, 300).softmax(dim=-1)
    t[:, ::7] = 0.0
    return [(torch.randn(12, 300) * 0.5).softmax(dim=-1), t]


def get_init_inputs():
    return []
'''
CALLS = {
    "batchmean": "F.kl_div(torch.log(p), t, reduction='batchmean')",
    "sum_full_namespace": "torch.nn.functional.kl_div(p.log(), t, reduction='sum')",
    "default_mean": "F.kl_div(torch.log(p), t)",
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_kl_div_matches_the_task(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = TASK.format(call=CALLS[name])
    cand = apply("cpu-fuse-loss-reduction", src)
    assert not isinstance(cand, NoOp), cand
    ref_ns, ns = load(src), load(cand.code)
    used = watch(ns, "_kopt_reduce")
    ref, new = ref_ns["Model"](), ns["ModelNew"]()
    for seed in range(3):
        torch.manual_seed(seed)
        inputs = ref_ns["get_inputs"]()
        with torch.no_grad():
            expected, got = ref(*inputs), new(*inputs)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert used == [True] * 3


def test_the_evaluator_agrees(tmp_path, monkeypatch):
    from kopt.sandboxes.evaluator import EvalConfig, evaluate

    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = TASK.format(call=CALLS["batchmean"])
    (tmp_path / "task.py").write_text(src)
    (tmp_path / "sol.py").write_text(apply("cpu-fuse-loss-reduction", src).code)
    r = evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(rounds=3, max_timing_s=1, trials=2,
                                                                         quality_seeds=2, confirm=False))
    assert r["correct"], r


@pytest.mark.parametrize("call", ["F.kl_div(torch.log(p), t, reduction='batchmean', log_target=True)",
                                  "F.kl_div(torch.log(p), t, reduction='none')",
                                  "F.kl_div(torch.log(p), t, reduction=self.how)"])
def test_other_kl_divs_are_left_alone(call):
    assert isinstance(apply("cpu-fuse-loss-reduction", TASK.format(call=call)), NoOp), call
