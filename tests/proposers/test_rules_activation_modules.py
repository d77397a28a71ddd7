"""Activation modules (`self.act = nn.LeakyReLU(s)`, called as `self.act(x)`) are read as
the functional op with the module's own parameters, so the fusion rules cover them; the
fused kernel reads those parameters at run time (a changed slope is followed)."""
from __future__ import annotations

import ast

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.named_return import activation_modules, normalise  # noqa: E402
from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402

TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, slope, low, high):
        super().__init__()
        self.lin = nn.Linear(16, 24)
        self.leaky = nn.LeakyReLU(slope)
        self.clip = nn.Hardtanh(min_val=low, max_val=high)
        self.smooth = nn.ELU(alpha=0.7)
        self.gelu = nn.GELU()
        self.gelu_tanh = nn.GELU(approximate="tanh")

    def forward(self, x):
        x = self.lin(x)
        x = self.leaky(x)
        x = self.smooth(x * 2.0)
        x = self.clip(x)
        x = self.gelu(x)
        return x


def get_inputs():
    return [torch.randn(5, 16)]


def get_init_inputs():
    return [0.2, -0.4, 0.9]
'''


def test_activation_modules_are_found_and_approximate_gelu_is_left_alone():
    cls = next(n for n in ast.parse(TASK).body if isinstance(n, ast.ClassDef))
    assert activation_modules(cls) == {"self.leaky": "LeakyReLU", "self.clip": "Hardtanh", "self.smooth": "ELU",
                                       "self.gelu": "GELU"}
    assert "negative_slope=self.leaky.negative_slope" in normalise(TASK)


def test_fused_activation_modules_match_and_follow_their_parameters(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    result = apply("cpu-fuse-elementwise-chain", TASK)
    assert not isinstance(result, NoOp) and "leaky_relu" in result.plan_step and "4 statements" in result.plan_step
    ref_ns: dict = {}
    new_ns: dict = {}
    exec(compile(TASK, "task", "exec"), ref_ns)
    exec(compile(result.code, "solution", "exec"), new_ns)  # the test's own generated code
    torch.manual_seed(1)
    ref = ref_ns["Model"](0.2, -0.4, 0.9)
    torch.manual_seed(1)
    new = new_ns["ModelNew"](0.2, -0.4, 0.9)
    for slope in (0.2, 0.05):
        ref.leaky.negative_slope = new.leaky.negative_slope = slope
        x = torch.randn(5, 16) * 3
        with torch.no_grad():
            torch.testing.assert_close(new(x), ref(x), atol=1e-5, rtol=1e-5)
