"""Softmax / log_softmax over the channels of an (N, C, *spatial) tensor as one fused C++
kernel (`softmax_channels`): it matches the reference, with the elementwise statements
around it, and the fused path is the one that ran."""
from __future__ import annotations

import textwrap

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.kernelbench_rules import RulesProposer  # noqa: E402
from tests.proposers.rule_solutions import load  # noqa: E402

# written for this test: a convolution, then a softmax over its channels and a tail
TASK = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv{nd}d(3, channels, 3)
        self.bias = nn.Parameter(torch.randn({bias_shape}))
        self.soft = nn.Softmax(dim=1)

    def forward(self, x):
        x = self.conv(x)
{body}
        return x


def get_inputs():
    return [torch.randn({input_shape})]


def get_init_inputs():
    return [7]
'''

BODIES = {
    "softmax_tail": "x = torch.softmax(x, dim=1)\nx = x + self.bias\nx = x * 2.5\nx = torch.sigmoid(x)",
    "module_head": "x = x - self.bias\nx = self.soft(x)\nx = torch.tanh(x)",
    "log_softmax": "x = x * 0.5\nx = F.log_softmax(x, dim=1)\nx = x + self.bias",
    "negative_dim": "x = torch.softmax(x, dim=-3)\nx = x * torch.sigmoid(x)",
}
SHAPES = {2: ("7, 1, 1", "2, 3, 17, 19"), 3: ("1, 7, 1, 1, 1", "2, 3, 6, 9, 11")}


def _watch(ns: dict, name: str) -> list[bool]:
    inner, used = ns[name], []

    def watched(*args, **kwargs):
        y = inner(*args, **kwargs)
        used.append(y is not None)
        return y

    ns[name] = watched
    return used


def _pair(ref_ns: dict, ns: dict):
    """The task's Model and the solution's ModelNew, built from the same seed."""
    torch.manual_seed(1)
    ref = ref_ns["Model"](*ref_ns["get_init_inputs"]())
    torch.manual_seed(1)
    return ref, ns["ModelNew"](*ref_ns["get_init_inputs"]())


# dim=-3 of a 5-d tensor is a spatial dim, not channels: the fallback test covers it
@pytest.mark.parametrize("name, nd", [(name, nd) for name in sorted(BODIES) for nd in (2, 3)
                                      if (name, nd) != ("negative_dim", 3)])
def test_channel_softmax_matches_the_reference(name, nd, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    bias_shape, input_shape = SHAPES[nd]
    src = TASK.format(nd=nd, bias_shape=bias_shape, input_shape=input_shape,
                      body=textwrap.indent(BODIES[name], " " * 8))
    ref_ns = load(src)
    cands = [c for c in RulesProposer().candidates(src) if "_run_csoft" in c.code and "softmax" in c.plan_step]
    assert cands, "no softmax candidate"
    for cand in cands:
        ns = load(cand.code)
        used = _watch(ns, "_run_csoft")
        ref, new = _pair(ref_ns, ns)
        for seed in range(2):
            torch.manual_seed(seed)
            (x,) = ref_ns["get_inputs"]()
            with torch.no_grad():
                expected, got = ref(x * 3), new(x * 3)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
        assert used == [True, True], (cand.plan_step, used)


def test_softmax_over_a_spatial_dim_is_not_the_channel_kernel(tmp_path, monkeypatch):
    """dim=2 of a 4-d tensor: neither the channel kernel nor the rows kernel handles it, so
    the original statements run, and the result is still the reference's."""
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = TASK.format(nd=2, bias_shape="7, 1, 1", input_shape="2, 3, 9, 10",
                      body=textwrap.indent("x = torch.softmax(x, dim=2)\nx = x + self.bias", " " * 8))
    ref_ns = load(src)
    for cand in [c for c in RulesProposer().candidates(src) if "_run_csoft" in c.code]:
        ns = load(cand.code)
        used = _watch(ns, "_run_csoft")
        ref, new = _pair(ref_ns, ns)
        (x,) = ref_ns["get_inputs"]()
        with torch.no_grad():
            torch.testing.assert_close(new(x), ref(x), atol=1e-5, rtol=1e-4)
        assert used == []
