"""Rule `cpu-fuse-scan`: reverse and masked cumsum / cumprod as one C++ scan -- bit for bit
the task's values along the last or a strided dim, the task's expression wherever the
kernel does not apply, and kopt's evaluator agrees the solution is correct."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402
from tests.proposers.rule_solutions import load, watch  # noqa: E402

# written for this test: running totals of event weights, from the end or where an event fired
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, w, fired):
        return {expr}


def get_inputs():
    w = torch.rand({shape}) + 0.5
    return [w, {mask}]


def get_init_inputs():
    return [{dim}]
'''
CASES = {  # expression, shape, mask, dim
    "reverse_last_dim": ("torch.cumsum(w.flip(self.dim), dim=self.dim).flip(self.dim)", "6, 700", "None", -1),
    "reverse_strided_dim_torch_flip": ("torch.flip(torch.cumsum(torch.flip(w, dims=[1]), 1), [1])", "3, 40, 300",
                                       "None", 1),
    "masked_bool": ("torch.cumsum(w * fired, dim=self.dim)", "5, 999", "torch.rand(5, 999) > 0.4", 1),
    "masked_float_strided": ("torch.cumsum(w * fired, dim=self.dim)", "7, 9, 260", "torch.rand(7, 9, 260)", 1),
    "masked_cumprod_method": ("(w * fired).cumprod(self.dim)", "4, 50", "torch.rand(4, 50) > 0.1", 1),
}


def source(name: str) -> str:
    expr, shape, mask, dim = CASES[name]
    return TASK.format(expr=expr, shape=shape, mask=mask, dim=dim)


@pytest.mark.parametrize("name", sorted(CASES))
def test_scan_matches_the_task(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = source(name)
    cand = apply("cpu-fuse-scan", src)
    assert not isinstance(cand, NoOp), cand
    ref_ns, ns = load(src), load(cand.code)
    used = watch(ns, "_kopt_scan")
    ref, new = ref_ns["Model"](*ref_ns["get_init_inputs"]()), ns["ModelNew"](*ref_ns["get_init_inputs"]())
    for seed in range(2):
        torch.manual_seed(seed)
        inputs = ref_ns["get_inputs"]()
        with torch.no_grad():
            expected, got = ref(*inputs), new(*inputs)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        torch.testing.assert_close(got, expected, atol=0, rtol=0 if "prod" not in name else 1e-6)
    assert used == [True, True]
    grad = [inputs[0].clone().requires_grad_(), inputs[1]]
    assert new(*grad).requires_grad and used[-1] is False  # autograd: the task's expression


def test_the_evaluator_agrees(tmp_path, monkeypatch):
    from kopt.sandboxes.evaluator import EvalConfig, evaluate

    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = source("masked_bool")
    (tmp_path / "task.py").write_text(src)
    (tmp_path / "sol.py").write_text(apply("cpu-fuse-scan", src).code)
    r = evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(rounds=3, max_timing_s=1, trials=2,
                                                                         quality_seeds=2, confirm=False))
    assert r["correct"], r


@pytest.mark.parametrize("expr", [
    "torch.cumsum(w, dim=self.dim)",  # plain: nothing to fuse
    "torch.cumsum(w.flip(0), dim=self.dim).flip(0)",  # flipped on another dim
    "torch.cumsum(w.flip(self.dim), dim=self.dim)",  # flipped once: not a reverse scan
    "torch.cumsum(w + fired, dim=self.dim)",
    "torch.cumsum(w * fired, dim=self.dim, dtype=torch.float64)",
])
def test_other_scans_are_left_alone(expr):
    src = TASK.format(expr=expr, shape="3, 4", mask="None", dim=1)
    assert isinstance(apply("cpu-fuse-scan", src), NoOp), expr


def test_a_broadcast_mask_runs_the_task(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    ns = load(apply("cpu-fuse-scan", source("masked_bool")).code)
    used = watch(ns, "_kopt_scan")
    w, fired = torch.rand(5, 30), torch.rand(30) > 0.5
    with torch.no_grad():
        torch.testing.assert_close(ns["ModelNew"](1)(w, fired), torch.cumsum(w * fired, dim=1))
    assert used == [False]
