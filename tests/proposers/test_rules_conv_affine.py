"""`cpu-fold-conv-affine`: a convolution and the per-channel scales / shifts / eval-mode
BatchNorm after it as one convolution with folded weights. Each case is a task written
here; the candidate must match it (1-3 spatial dims, groups, transposed convolutions, no
bias), fold where it should, fall back where the fold does not hold (an operand that varies
over space, a training-mode BatchNorm, autograd on), and refold after the weights are
re-drawn in place."""
from __future__ import annotations

import textwrap

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402
from tests.proposers.rule_solutions import load, watch  # noqa: E402

TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = {conv}
        self.bn = nn.BatchNorm{nd}d({cout})
        self.per_channel = nn.Parameter(torch.randn({cout}, {ones}))
        self.over_space = nn.Parameter(torch.randn({space}))
        self.scale = 1.7

    def forward(self, v):
{body}
        return v


def get_inputs():
    return [torch.randn({shape})]


def get_init_inputs():
    return []
'''

# name -> (conv, Cout, input shape, body, eval mode, the fold applies at run time)
CASES = {
    "conv2d_scale_bias_divide": ("nn.Conv2d(6, 10, 3, padding=1)", 10, "3, 6, 11, 12",
                                 "v = self.conv(v)\nv = v * self.scale\nv = v + self.per_channel\nv = v / 2.0\n"
                                 "v = torch.relu(v)", False, True),
    "conv3d_groups_no_bias_bn_eval": ("nn.Conv3d(4, 6, 3, groups=2, bias=False)", 6, "2, 4, 5, 6, 7",
                                      "v = self.conv(v)\nv = self.bn(v)\nv = 0.5 * v\nv = v - self.per_channel",
                                      True, True),
    "convtranspose2d_groups_bn_eval": ("nn.ConvTranspose2d(6, 8, 3, stride=2, padding=1, output_padding=1, "
                                       "groups=2)", 8, "2, 6, 5, 7",
                                       "v = self.conv(v)\nv = self.per_channel * v\nv = self.bn(v)\nv = v + 0.25",
                                       True, True),
    "conv1d_subtract": ("nn.Conv1d(3, 5, 4, stride=2)", 5, "4, 3, 20", "v = self.conv(v)\nv = v - 1.5", False, True),
    "bn_training_falls_back": ("nn.Conv2d(3, 4, 3)", 4, "5, 3, 9, 9", "v = self.conv(v)\nv = self.bn(v)\nv = v * 2.0",
                               False, False),
    "operand_over_space_falls_back": ("nn.Conv2d(3, 4, 3)", 4, "2, 3, 12, 12",
                                      "v = self.conv(v)\nv = v * self.over_space", False, False),
}


def build(name: str) -> tuple[str, str]:
    conv, cout, shape, body, _, _ = CASES[name]
    nd = shape.count(",") - 1
    src = TASK.format(conv=conv, cout=cout, nd=nd, ones=", ".join(["1"] * nd), space=10, shape=shape,
                      body=textwrap.indent(body, " " * 8))
    result = apply("cpu-fold-conv-affine", src, {"fuse_tail": False})
    assert not isinstance(result, NoOp), result
    return src, result.code


@pytest.mark.parametrize("name", sorted(CASES))
def test_conv_affine_matches_the_task(name):
    src, code = build(name)
    ref_ns, new_ns = load(src), load(code)
    used = watch(new_ns, "_kopt_conv_fold")
    torch.manual_seed(3)
    ref = ref_ns["Model"]()
    torch.manual_seed(3)
    new = new_ns["ModelNew"]()
    for redraw in range(2):
        with torch.no_grad():
            for p, q in zip([*ref.parameters(), *ref.buffers()], [*new.parameters(), *new.buffers()]):
                if p.dtype == torch.float32 and redraw:  # parameters and the BatchNorm's running statistics
                    p.copy_(torch.rand(p.shape) + 0.5)
                q.copy_(p)
        if CASES[name][4]:
            ref.eval()
            new.eval()
        torch.manual_seed(redraw)
        (x,) = ref_ns["get_inputs"]()
        with torch.no_grad():
            expected, got = ref(x), new(x)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(new.bn.running_mean, ref.bn.running_mean)  # training mode updates them alike
    assert any(used) == CASES[name][5], used
    with torch.enable_grad():  # autograd: the task's own statements, gradients intact
        y = new(x)
    assert y.requires_grad


def test_folded_weights_follow_an_in_place_redraw():
    src, code = build("conv2d_scale_bias_divide")
    ref_ns, new_ns = load(src), load(code)
    torch.manual_seed(0)
    ref, new = ref_ns["Model"](), new_ns["ModelNew"]()
    new.load_state_dict(ref.state_dict())
    x = torch.randn(2, 6, 8, 8)
    with torch.no_grad():
        new(x)
        for m in (ref, new):
            m.conv.weight.mul_(-3.0)
        torch.testing.assert_close(new(x), ref(x), atol=1e-4, rtol=1e-4)


def test_a_nonlinearity_right_after_the_conv_is_not_folded():
    src = TASK.format(conv="nn.Conv2d(3, 4, 3)", cout=4, nd=2, ones="1, 1", space=4, shape="1, 3, 8, 8",
                      body=textwrap.indent("v = self.conv(v)\nv = torch.relu(v)\nv = v * 2.0", " " * 8))
    result = apply("cpu-fold-conv-affine", src)
    assert isinstance(result, NoOp) and "convolution" in result.reason


def test_the_tail_after_the_fold_is_fused():
    src, _ = build("conv2d_scale_bias_divide")
    result = apply("cpu-fold-conv-affine", src)
    assert "cpu-fuse-elementwise-chain" in result.skills and "relu" in result.plan_step and result.try_first
