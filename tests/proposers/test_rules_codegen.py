"""The rules proposer's fused C++ kernels compute what the reference computes, op by op."""
from __future__ import annotations

import ast
import textwrap

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.cpu_codegen import generate  # noqa: E402
from kopt.agent.proposers.rules.forward_analysis import find_fusable_runs, forward_of, model_class  # noqa: E402
from kopt.agent.proposers.rules.kernelbench_rules import BASE_FLAGS  # noqa: E402

TEMPLATE = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, channels, scale):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3)
        self.scale = scale
        self.bias = nn.Parameter(torch.randn(channels, 1, 1))

    def forward(self, x):
        x = self.conv(x)
{body}
        return x


def get_inputs():
    return [torch.randn(2, 3, 9, 11)]


def get_init_inputs():
    return [5, 0.75]
'''

BODIES = {
    "relu_sigmoid_tanh": "x = torch.relu(x)\nx = torch.sigmoid(x)\nx = torch.tanh(x)",
    "gelu_scale_bias": "x = F.gelu(x)\nx = x * self.scale + self.bias",
    "gelu_tanh_approx": "x = F.gelu(x, approximate='tanh')\nx = x - 0.5",
    "mish_swish": "x = F.mish(x)\nx = x * torch.sigmoid(x)",
    "silu_softplus": "x = F.silu(x)\nx = F.softplus(x)",
    "leaky_elu_selu": "x = F.leaky_relu(x, negative_slope=0.2)\nx = F.elu(x, alpha=0.5)\nx = F.selu(x)",
    "clamps": "x = torch.clamp(x, min=-0.3, max=0.4)\nx = F.hardtanh(x, -0.2, 0.3)\nx = x.clamp(min=-0.1)",
    "hard_acts": "x = F.hardswish(x)\nx = F.hardsigmoid(x)\nx = F.relu6(x * 4.0)",
    "pow_div": "x = x ** 2\nx = x / (1.0 + x)\nx = -x",
    "augassign": "x *= self.scale\nx += self.bias\nx = torch.relu(x)",
    "softsign_logsig": "x = F.softsign(x)\nx = F.logsigmoid(x)\nx = torch.abs(x)",
}


def build(body: str, fast: bool):
    src = TEMPLATE.format(body=textwrap.indent(body, " " * 8))
    runs = find_fusable_runs(forward_of(model_class(ast.parse(src))))
    assert len(runs) == 1 and runs[0].fresh, runs
    flags = BASE_FLAGS + (("-ffast-math",) if fast else ())
    ref_ns, new_ns = {}, {}
    exec(compile(src, "task", "exec"), ref_ns)
    exec(compile(generate(src, runs, flags), "solution", "exec"), new_ns)
    return ref_ns, new_ns


@pytest.mark.parametrize("name", sorted(BODIES))
@pytest.mark.parametrize("fast", [False, True])
def test_fused_matches_reference(name, fast, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    ref_ns, new_ns = build(BODIES[name], fast)
    torch.manual_seed(42)
    ref = ref_ns["Model"](*ref_ns["get_init_inputs"]())
    torch.manual_seed(42)
    new = new_ns["ModelNew"](*ref_ns["get_init_inputs"]())
    for seed in range(3):
        torch.manual_seed(seed)
        (x,) = ref_ns["get_inputs"]()
        x = x * 3
        before = x.clone()
        with torch.no_grad():
            expected, got = ref(x), new(x)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
        assert torch.equal(x, before), "fused kernel modified the input"


def test_non_elementwise_statements_are_not_fused():
    src = TEMPLATE.format(body=textwrap.indent("x = torch.softmax(x, dim=1)\nx = x.view(2, -1)", " " * 8))
    assert find_fusable_runs(forward_of(model_class(ast.parse(src)))) == []


def test_run_starting_at_an_input_is_not_in_place():
    src = "class Model:\n    def forward(self, x):\n        x = torch.relu(x)\n        x = x * 2.0\n        return x\n"
    [run] = find_fusable_runs(forward_of(model_class(ast.parse(src))))
    assert not run.fresh and run.stop - run.start == 2


LEVEL1_STYLE = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return {call}


batch_size = 8
dim = 300


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
'''


@pytest.mark.parametrize("call", ["torch.softmax(x, dim=1)", "x.log_softmax(dim=-1)", "torch.tanh(x)",
                                  "x * torch.sigmoid(x)", "x / (1 + torch.abs(x))"])
def test_a_returned_call_is_read_like_an_assignment(tmp_path, call):
    """KernelBench's level-1 forwards return the op directly, or an expression of the input
    (Swish, Softsign); the rules still make a kernel, and it matches the reference."""
    from kopt.agent.proposers.rules.kernelbench_rules import name_returned_value, plans

    src = LEVEL1_STYLE.format(call=call)
    found = plans(src)
    assert found, f"no rule for `return {call}`"
    ns_ref: dict = {}
    exec(compile(src, "task", "exec"), ns_ref)
    ns_new: dict = {}
    exec(compile(generate(name_returned_value(src), found[0][1], BASE_FLAGS), "cand", "exec"), ns_new)
    x = torch.randn(8, 300)
    torch.testing.assert_close(ns_new["ModelNew"]()(x.clone()), ns_ref["Model"]()(x), atol=1e-5, rtol=1e-5)


def test_returning_a_plain_name_is_left_alone():
    from kopt.agent.proposers.rules.kernelbench_rules import name_returned_value

    src = LEVEL1_STYLE.format(call="x").replace("return x", "x = x * 2\n        return x")
    assert name_returned_value(src) == src
