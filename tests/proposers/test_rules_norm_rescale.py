"""Rule `cpu-fuse-norm-rescale`: an input divided by a norm / mean of itself in one blocked
C++ pass -- the task's values on every layout the kernel has (whole tensor, contiguous
rows, a strided dim), the task's statements wherever it does not apply, and kopt's
evaluator agrees the solution is correct."""
from __future__ import annotations

import textwrap

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402
from tests.proposers.rule_solutions import load, watch  # noqa: E402

# written for this test: normalisations in the forms tasks write them
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, eps, dim):
        super().__init__()
        self.eps = eps
        self.dim = dim

    def forward(self, x):
{body}


def get_inputs():
    return [torch.randn({shape}) + 0.3]


def get_init_inputs():
    return [1e-5, 2]
'''
CASES = {  # body, input shape
    "rms_strided_dim": ("scale = torch.sqrt(torch.mean(x ** 2, dim=self.dim, keepdim=True) + self.eps)\n"
                        "return x / scale", "3, 5, 70, 9"),
    "l2_rows": ("return x / torch.norm(x, p=2, dim=-1, keepdim=True)", "6, 5000"),
    "l1_mean_rows_method": ("return x / x.abs().mean(dim=1, keepdim=True)", "7, 33"),
    "frobenius_everything": ("norm = torch.norm(x, p='fro')\nreturn x / norm", "4, 300, 20"),
    "sum_of_squares_pow_half": ("return x / (torch.sum(x * x, 0, True) ** 0.5 + 2.0 * self.eps)", "9, 4, 600"),
    "l1_norm_p1": ("return x / torch.norm(x, 1, 1, True)", "5, 11, 3"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rescale_matches_the_task(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    body, shape = CASES[name]
    src = TASK.format(body=textwrap.indent(body, " " * 8), shape=shape)
    cand = apply("cpu-fuse-norm-rescale", src)
    assert not isinstance(cand, NoOp), cand
    ref_ns, ns = load(src), load(cand.code)
    used = watch(ns, "_kopt_rescale")
    ref, new = ref_ns["Model"](1e-5, 2), ns["ModelNew"](1e-5, 2)
    for seed in range(2):
        torch.manual_seed(seed)
        (x,) = ref_ns["get_inputs"]()
        with torch.no_grad():
            expected, got = ref(x), new(x)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert used == [True, True]
    x = x.clone().requires_grad_()
    assert new(x).requires_grad and used[-1] is False  # autograd: the task's statements


def test_the_evaluator_agrees(tmp_path, monkeypatch):
    from kopt.sandboxes.evaluator import EvalConfig, evaluate

    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = TASK.format(body=textwrap.indent(CASES["rms_strided_dim"][0], " " * 8), shape="4, 16, 64, 64")
    (tmp_path / "task.py").write_text(src)
    (tmp_path / "sol.py").write_text(apply("cpu-fuse-norm-rescale", src).code)
    r = evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(rounds=3, max_timing_s=1, trials=2,
                                                                         quality_seeds=2, confirm=False))
    assert r["correct"], r


@pytest.mark.parametrize("body", [
    "return x / torch.norm(x, p=2, dim=1)",  # no keepdim: broadcasts another way
    "return x / torch.norm(x, p=3, dim=1, keepdim=True)",
    "y = x * 2\nreturn y / torch.norm(y, dim=1, keepdim=True)",
    "return x / torch.mean(x ** 3, dim=1, keepdim=True)",
    "return x / torch.mean(torch.exp(x), dim=1, keepdim=True)",
    "return x * torch.norm(x, p=2, dim=1, keepdim=True)",
    "return x / torch.max(x, dim=1, keepdim=True)[0]",
])
def test_what_is_not_a_rescale_is_a_noop(body):
    src = TASK.format(body=textwrap.indent(body, " " * 8), shape="3, 4")
    assert isinstance(apply("cpu-fuse-norm-rescale", src), NoOp), body


def test_a_dim_the_kernel_does_not_take_runs_the_task(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = TASK.format(body=textwrap.indent(CASES["rms_strided_dim"][0], " " * 8), shape="3, 4, 5")
    ns = load(apply("cpu-fuse-norm-rescale", src).code)
    used = watch(ns, "_kopt_rescale")
    new = ns["ModelNew"](1e-5, (1, 2))
    x = torch.randn(3, 4, 5)
    with torch.no_grad():
        expected = x / torch.sqrt(torch.mean(x ** 2, dim=(1, 2), keepdim=True) + 1e-5)
        torch.testing.assert_close(new(x), expected)
    assert used == [False]
