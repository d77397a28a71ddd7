"""A fused elementwise run whose operand the kernel cannot read (one that broadcasts the
value to a larger shape, as upstream level-2 #75's (1, C, 1, 1) bias does to an (N, 1)
minimum) runs the original statements instead: a rule narrows, it never raises."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.channel_layout import CHANNEL_LAYOUT  # noqa: E402
from kopt.agent.proposers.rules.kernelbench_rules import RulesProposer  # noqa: E402
from tests.proposers.rule_solutions import load  # noqa: E402

# written for this test: a row minimum, then a bias whose shape the task sets at construction
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, features, bias_shape):
        super().__init__()
        self.proj = nn.Linear(features, features)
        self.bias = nn.Parameter(torch.randn(bias_shape))

    def forward(self, x):
        x = self.proj(x)
        x = torch.amin(x, dim=1, keepdim=True)
        x = x * 0.5 + self.bias
        x = torch.relu(x)
        return x


rows = 6
features = 10


def get_inputs():
    return [torch.randn(rows, features)]


def get_init_inputs():
    return [features, BIAS_SHAPE]
'''


def _watch_fused(ns: dict) -> list[bool]:
    """Per call of the solution's `_run_fused`, whether the kernel ran (not None)."""
    inner, used = ns["_run_fused"], []

    def watched(*args, **kwargs):
        y = inner(*args, **kwargs)
        used.append(y is not None)
        return y

    ns["_run_fused"] = watched
    return used


def _fused_candidates(src: str) -> list:
    found = [c for c in RulesProposer().candidates(src) if "_run_fused" in c.code]
    assert found, "no fused candidate for the task"
    return found


@pytest.mark.parametrize(
    "bias_shape, fused", [((1, 10, 1, 1), False), ((10, 1, 1), False), ((1,), True), ((6, 1), True)]
)
def test_an_operand_the_kernel_cannot_read_runs_the_original(bias_shape, fused, tmp_path, monkeypatch):
    """(1, 10, 1, 1) and (10, 1, 1) broadcast the (6, 1) value to a larger shape (the old
    runtime raised "not per-channel" there); (1,) is one number and (6, 1) is per row (the
    channel axis is dim 0 here): both stay in the kernel."""
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = TASK.replace("BIAS_SHAPE", repr(bias_shape))
    ref_ns = load(src)
    for cand in _fused_candidates(src):
        ns = load(cand.code)
        used = _watch_fused(ns)
        torch.manual_seed(3)
        ref = ref_ns["Model"](*ref_ns["get_init_inputs"]())
        torch.manual_seed(3)
        new = ns["ModelNew"](*ref_ns["get_init_inputs"]())
        torch.manual_seed(5)
        (x,) = ref_ns["get_inputs"]()
        with torch.no_grad():
            expected, got = ref(x), new(x)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        assert used and all(u == fused for u in used), (cand.plan_step, used)


def test_operand_layout_declines_what_is_not_a_number_or_per_channel():
    ns = {"torch": torch}
    exec(CHANNEL_LAYOUT, ns)  # the helper every fused runtime pastes into its solution
    layout = ns["_operand_layout"]
    x = torch.zeros(4, 3, 5)
    assert layout(x, [torch.ones(1), torch.ones(3, 1)]) == ([0, 1], (3, 5))
    assert layout(x, [torch.ones(5)]) == ([1], (5, 1))
    assert layout(x, [torch.ones(1, 1, 1, 1)]) is None  # one number, yet a 4-d result
    assert layout(x, [torch.ones(2, 3, 1)]) is None  # varies along two axes
    assert layout(x, [torch.ones(3, 1), torch.ones(5)]) is None  # two axes between them
    assert layout(x, [torch.ones(7, 1, 1)]) is None  # not x's channel count
