"""Rule `cpu-values-only-reduction`: max / min over a dim whose indices are thrown away
become amax / amin; everything else such a call can mean runs as written."""
from __future__ import annotations

import textwrap

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402
from tests.proposers.rule_solutions import load  # noqa: E402

# written for this test: reductions of a projected input, in the forms tasks write them
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, features, dim):
        super().__init__()
        self.proj = nn.Linear(features, features)
        self.dim = dim
        self.floor = nn.Parameter(torch.randn(5, features))

    def forward(self, x):
        x = self.proj(x)
{body}
        return x


def get_inputs():
    return [torch.randn(3, 5, 12)]


def get_init_inputs():
    return [12, 1]
'''
BODIES = {  # body -> how many calls take amax / amin
    "module_dim": ("x = torch.max(x, dim=self.dim)[0]\nx = torch.relu(x)", 1),
    "method_values_keepdim": ("x = x.min(dim=-1, keepdim=True).values * 2.0", 1),
    "positional_dim_in_an_expression": ("x = torch.max(x, 2)[0] - torch.min(x, 0)[0].sum()", 2),
    "two_tensors_is_elementwise": ("x = torch.max(x, self.floor)[0]", 0),
    "tuple_dim_runs_as_written": ("x = torch.amax(x, dim=(1, 2))\nx = torch.max(x.unsqueeze(0), dim=1)[0]", 1),
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_values_only_max_min_match_the_reference(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    body, fast = BODIES[name]
    src = TASK.format(body=textwrap.indent(body, " " * 8))
    cand = apply("cpu-values-only-reduction", src)
    assert not isinstance(cand, NoOp), cand
    ref_ns, ns = load(src), load(cand.code)
    calls = []
    for op in ("amax", "amin"):  # count the fast path through the solution's own torch
        real = getattr(torch, op)
        monkeypatch.setattr(torch, op, lambda *a, _real=real, **k: calls.append(1) or _real(*a, **k))
    torch.manual_seed(0)
    ref = ref_ns["Model"](*ref_ns["get_init_inputs"]())
    torch.manual_seed(0)
    new = ns["ModelNew"](*ref_ns["get_init_inputs"]())
    (x,) = ref_ns["get_inputs"]()
    with torch.no_grad():
        expected = ref(x)
        calls.clear()
        got = new(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert len(calls) == fast + (1 if name == "tuple_dim_runs_as_written" else 0)


def test_a_max_without_dim_or_with_its_indices_used_is_left_alone():
    for body in ("x = torch.max(x)", "x, idx = torch.max(x, dim=1)\nx = x + idx", "x = torch.max(x, dim=1)[1]"):
        src = TASK.format(body=textwrap.indent(body, " " * 8))
        assert isinstance(apply("cpu-values-only-reduction", src), NoOp), body
