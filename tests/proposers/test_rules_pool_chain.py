"""Rule `cpu-compose-pools`: consecutive poolings whose stride is their kernel become one
pooling with the product window; the result is the reference's, and anything the
composition does not cover (padding, a stride apart from the kernel, mixed kinds) runs the
original statements."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402
from tests.proposers.rule_solutions import load  # noqa: E402

# written for this test: a convolution, a softmax over channels, then poolings
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, channels, first, second):
        super().__init__()
        self.conv = nn.Conv{nd}d(2, channels, 3)
        self.first = {first}
        self.second = {second}

    def forward(self, x):
        x = self.conv(x)
        x = torch.softmax(x, dim=1)
        x = self.first(x)
        x = self.second(x)
        x = x * 2.0
        return x


def get_inputs():
    return [torch.randn({shape})]


def get_init_inputs():
    return [5, 2, 3]
'''
SHAPES = {1: "3, 2, 41", 2: "2, 2, 23, 30", 3: "2, 2, 11, 14, 17"}
COMPOSED = [  # (nd, first, second): both compose
    (3, "nn.MaxPool3d(first)", "nn.MaxPool3d(kernel_size=second)"),
    (2, "nn.AvgPool2d(first)", "nn.AvgPool2d(second, stride=second)"),
    (1, "nn.MaxPool1d(first, stride=first)", "nn.MaxPool1d(second)"),
    (2, "nn.MaxPool2d((first, second))", "nn.MaxPool2d(2)"),
]
NOT_COMPOSED = [  # same rule applies, the helper declines at run time
    (3, "nn.MaxPool3d(first, stride=1)", "nn.MaxPool3d(second)"),
    (2, "nn.MaxPool2d(first, padding=1)", "nn.MaxPool2d(second)"),
    (2, "nn.AvgPool2d(first, ceil_mode=True)", "nn.AvgPool2d(second)"),
]


def _run(nd: int, first: str, second: str, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = TASK.format(nd=nd, first=first, second=second, shape=SHAPES[nd])
    cand = apply("cpu-compose-pools", src)
    assert not isinstance(cand, NoOp), cand
    ref_ns, ns = load(src), load(cand.code)
    calls = []
    inner = ns["_composed_pool"]
    ns["_composed_pool"] = lambda x, pools: calls.append(inner(x, pools)) or calls[-1]
    torch.manual_seed(0)
    ref = ref_ns["Model"](*ref_ns["get_init_inputs"]())
    torch.manual_seed(0)
    new = ns["ModelNew"](*ref_ns["get_init_inputs"]())
    (x,) = ref_ns["get_inputs"]()
    with torch.no_grad():
        expected, got = ref(x), new(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    return cand, calls


@pytest.mark.parametrize("nd, first, second", COMPOSED)
def test_consecutive_poolings_are_one(nd, first, second, tmp_path, monkeypatch):
    cand, calls = _run(nd, first, second, tmp_path, monkeypatch)
    assert len(calls) == 1 and calls[0] is not None
    assert "softmax" in cand.plan_step  # the softmax before them is fused in the same candidate


@pytest.mark.parametrize("nd, first, second", NOT_COMPOSED)
def test_poolings_the_composition_does_not_cover_run_as_written(nd, first, second, tmp_path, monkeypatch):
    _, calls = _run(nd, first, second, tmp_path, monkeypatch)
    assert calls == [None]


def test_mixed_kinds_or_one_pool_are_no_chain():
    src = TASK.format(nd=2, first="nn.MaxPool2d(first)", second="nn.AvgPool2d(second)", shape=SHAPES[2])
    assert isinstance(apply("cpu-compose-pools", src), NoOp)
    one = src.replace("        x = self.second(x)\n", "")
    assert isinstance(apply("cpu-compose-pools", one), NoOp)
