"""`cpu-fold-conv-global-mean`: a convolution's output averaged over space, from window sums
of the input. Each case is a task written here; the candidate must match it (strides,
padding, dilation, transposed convolutions with output padding, 1-3 spatial dims), fall
back where the fold does not hold (groups, operands that vary over space), and refold
after the weights are re-drawn in place."""
from __future__ import annotations

import textwrap

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402
from tests.proposers.rule_solutions import load, watch  # noqa: E402

TASK = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = {conv}
        self.per_channel = nn.Parameter(torch.randn({cout}, {ones}))
        self.over_space = nn.Parameter(torch.randn({space}))

    def forward(self, v):
{body}
        return v


def get_inputs():
    return [torch.randn({shape})]


def get_init_inputs():
    return []
'''

# name -> (conv, Cout, input shape, body, the fold applies at run time)
CASES = {
    "conv2d_strided_padded_dilated": ("nn.Conv2d(6, 10, 3, stride=2, padding=2, dilation=2)", 10, "3, 6, 17, 14",
                                      "v = self.conv(v)\nv = v * 0.5\nv = torch.mean(v, dim=[2, 3], keepdim=True)",
                                      True),
    "conv2d_sum_without_keepdim": ("nn.Conv2d(6, 10, (3, 2), stride=(1, 2), bias=False)", 10, "3, 6, 11, 12",
                                   "v = self.conv(v)\nv = v * self.per_channel\nv = v.sum(dim=(-1, -2))", True),
    "convtranspose2d_output_padding": ("nn.ConvTranspose2d(6, 10, 3, stride=2, padding=1, output_padding=1)", 10,
                                       "2, 6, 9, 13", "v = self.conv(v)\nv = v - 1.5\n"
                                       "v = torch.mean(v, dim=(2, 3), keepdim=True)\nv = torch.tanh(v)", True),
    "convtranspose3d_wide_padding": ("nn.ConvTranspose3d(4, 5, (3, 4, 2), stride=(2, 1, 3), padding=(2, 1, 0))", 5,
                                     "2, 4, 5, 6, 4", "v = self.conv(v)\nv = v.mean(dim=[2, 3, 4], keepdim=True)",
                                     True),
    "conv1d_adaptive_pool": ("nn.Conv1d(6, 10, 5, padding=3)", 10, "3, 6, 30",
                             "v = self.conv(v)\nv = v * self.per_channel\nv = F.adaptive_avg_pool1d(v, 1)", True),
    "groups_fall_back": ("nn.Conv2d(6, 10, 3, groups=2)", 10, "3, 6, 12, 12",
                         "v = self.conv(v)\nv = torch.mean(v, dim=[2, 3], keepdim=True)", False),
    "operand_over_space_falls_back": ("nn.Conv2d(6, 10, 3)", 10, "3, 6, 12, 12",
                                      "v = self.conv(v)\nv = v * self.over_space\n"
                                      "v = torch.mean(v, dim=[2, 3], keepdim=True)", False),
}


def build(name: str) -> tuple[str, str]:
    conv, cout, shape, body, _ = CASES[name]
    nd = shape.count(",") + 1
    src = TASK.format(conv=conv, cout=cout, ones=", ".join(["1"] * (nd - 2)), space=10,
                      shape=shape, body=textwrap.indent(body, " " * 8))
    result = apply("cpu-fold-conv-global-mean", src)
    assert not isinstance(result, NoOp), result
    return src, result.code


@pytest.mark.parametrize("name", sorted(CASES))
def test_conv_mean_matches_the_task(name):
    src, code = build(name)
    ref_ns, new_ns = load(src), load(code)
    used = watch(new_ns, "_kopt_conv_mean")
    torch.manual_seed(3)
    ref = ref_ns["Model"]()
    torch.manual_seed(3)
    new = new_ns["ModelNew"]()
    for redraw in range(2):
        if redraw:
            with torch.no_grad():
                for p, q in zip(ref.parameters(), new.parameters()):
                    p.copy_(torch.rand(p.shape) * 2 - 1)
                    q.copy_(p)
        torch.manual_seed(redraw)
        (x,) = ref_ns["get_inputs"]()
        with torch.no_grad():
            expected, got = ref(x), new(x)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert any(used) == CASES[name][4], used


def test_an_added_constant_before_a_sum_is_not_folded():
    src = TASK.format(conv="nn.Conv2d(3, 4, 3)", cout=4, ones="1, 1", space=4, shape="1, 3, 8, 8",
                      body=textwrap.indent("v = self.conv(v)\nv = v + 1.0\nv = v.sum(dim=[2, 3])", " " * 8))
    assert isinstance(apply("cpu-fold-conv-global-mean", src), NoOp)


def test_a_nonlinearity_before_the_mean_is_not_folded():
    src = TASK.format(conv="nn.Conv2d(3, 4, 3)", cout=4, ones="1, 1", space=4, shape="1, 3, 8, 8",
                      body=textwrap.indent("v = self.conv(v)\nv = torch.relu(v)\nv = v.mean(dim=[2, 3])", " " * 8))
    result = apply("cpu-fold-conv-global-mean", src)
    assert isinstance(result, NoOp) and "convolution" in result.reason
