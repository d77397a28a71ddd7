"""`cpu-remove-redundant-ops`: statements that cannot change their value are removed, and
only those. Tasks written here; the candidate must match each (NaN inputs included)."""
from __future__ import annotations

import textwrap

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.redundant_ops import redundant_statements  # noqa: E402
from kopt.agent.proposers.rules.registry import NoOp, analyse, apply  # noqa: E402

TASK = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
{body}
        return x


def get_inputs():
    return [torch.randn(6, 33) * 4]


def get_init_inputs():
    return []
'''

# body -> indices of forward's statements that are redundant
CASES = {
    "tanh_then_clamp": ("x = torch.tanh(x)\nx = torch.clamp(x, min=-1.0, max=1.0)\nx = x * 3.0", [1]),
    "scaled_sigmoid_then_clamp": ("x = torch.sigmoid(x)\nx = x * 0.5\nx = x.clamp(0.0, 0.5)", [2]),
    "relu_twice_and_relu6_hardtanh": ("x = F.relu6(x)\nx = torch.relu(x)\nx = F.hardtanh(x, -2.0, 7.0)", [1, 2]),
    "softmax_renormalised": ("x = torch.softmax(x, dim=-1)\nx = x / x.sum(dim=-1, keepdim=True)", [1]),
    "clamp_that_binds_is_kept": ("x = torch.tanh(x)\nx = torch.clamp(x, min=-0.5, max=0.5)", []),
    "parameters_move_the_range": ("x = F.elu(x, alpha=2.0)\nx = torch.clamp(x, min=-1.0)", []),
    "renormalised_over_another_dim_is_kept": ("x = torch.softmax(x, dim=-1)\nx = x / x.sum(dim=0, keepdim=True)",
                                              []),
}


def source(name: str) -> str:
    return TASK.format(body=textwrap.indent(CASES[name][0], " " * 8))


@pytest.mark.parametrize("name", sorted(CASES))
def test_only_statements_that_cannot_change_their_value_are_found(name):
    t = analyse(source(name))
    assert [i for i, _ in redundant_statements(t.forward)] == CASES[name][1]


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if CASES[n][1]])
def test_the_simplified_model_matches_the_task(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = source(name)
    # without the fused tail: the C++ fminf/fmaxf clamps map NaN to a bound (the fusion rule's
    # own behaviour); what is checked here is that removing the statements keeps NaN as PyTorch does
    result = apply("cpu-remove-redundant-ops", src, {"fuse_tail": False})
    assert not isinstance(result, NoOp), result
    ref_ns: dict = {}
    new_ns: dict = {}
    exec(compile(src, "task", "exec"), ref_ns)
    exec(compile(result.code, "solution", "exec"), new_ns)  # the test's own generated code
    x = torch.randn(6, 33) * 4
    x[0, :3] = float("nan")
    with torch.no_grad():
        torch.testing.assert_close(new_ns["ModelNew"]()(x.clone()), ref_ns["Model"]()(x), atol=1e-5, rtol=1e-5,
                                   equal_nan=True)


def test_nothing_redundant_is_a_noop():
    assert isinstance(apply("cpu-remove-redundant-ops", source("clamp_that_binds_is_kept")), NoOp)
