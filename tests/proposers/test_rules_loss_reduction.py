"""`cpu-fuse-loss-reduction`: a forward returning the mean/sum of an elementwise expression
of its inputs becomes one C++ pass. Tasks written here; each candidate must match the task
for every way its inputs broadcast, and fall back (autograd) where the pass does not apply."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402

TASK = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.margin = 0.5

    def forward(self, {args}):
        """A loss."""
        return {expr}


def get_inputs():
    return [{inputs}]


def get_init_inputs():
    return []
'''

# name -> (forward args, returned expression, input shapes)
CASES = {
    "squared_hinge_three_broadcasts": ("s, y, m", "torch.mean(torch.clamp(m - s * y, min=0) ** 2)",
                                       [(6, 300), (6, 1), (300,)]),
    "mse_functional": ("a, b", "F.mse_loss(a, b)", [(7, 5000), (7, 5000)]),
    "smooth_l1_functional": ("a, b", "torch.nn.functional.smooth_l1_loss(a, b)", [(5, 3000), (5, 3000)]),
    "l1_sum_method_form": ("a, b", "(a - b).abs().sum()", [(3, 4, 50), (3, 4, 50)]),
    "operand_and_one_dim": ("p, t", "torch.mean(torch.relu(self.margin - p * t))", [(9000,), (9000,)]),
    "general_broadcast_copied": ("a, b", "torch.sum(torch.sigmoid(a) * b)", [(4, 1, 8), (1, 5, 8)]),
    "scalar_tensor_input": ("a, b", "torch.mean((a - b) ** 2)", [(40, 8192), ()]),
}


def source(name: str) -> str:
    args, expr, shapes = CASES[name]
    return TASK.format(args=args, expr=expr, inputs=", ".join(f"torch.randn({s})" if s else "torch.randn(())"
                                                             for s in map(lambda s: ", ".join(map(str, s)), shapes)))


def load(src: str) -> dict:
    ns: dict = {}
    exec(compile(src, "solution", "exec"), ns)  # the test's own generated code
    return ns


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_loss_matches_the_task(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = source(name)
    result = apply("cpu-fuse-loss-reduction", src)
    assert not isinstance(result, NoOp), result
    ref_ns, new_ns = load(src), load(result.code)
    ref, new = ref_ns["Model"](), new_ns["ModelNew"]()
    for seed in range(3):
        torch.manual_seed(seed)
        inputs = ref_ns["get_inputs"]()
        with torch.no_grad():
            expected, got = ref(*inputs), new(*inputs)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        assert new_ns["_kopt_reduce"]("reduce_0", inputs, [0.5] if "self.margin" in src else [],
                                      "mean") is not None, "the fused pass did not run"
    grad_inputs = [t.clone().requires_grad_() for t in inputs]
    out = new(*grad_inputs)
    assert out.requires_grad, "with autograd the original statement must run"


@pytest.mark.parametrize("expr", ["torch.mean(a @ b)", "torch.mean(a, dim=1)", "torch.sum(torch.softmax(a, 1))"])
def test_what_is_not_an_elementwise_reduction_is_a_noop(expr):
    src = TASK.format(args="a, b", expr=expr, inputs="torch.randn(3, 3), torch.randn(3, 3)")
    result = apply("cpu-fuse-loss-reduction", src)
    assert isinstance(result, NoOp) and "elementwise" in result.reason
