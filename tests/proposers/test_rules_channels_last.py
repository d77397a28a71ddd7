"""`cpu-conv-channels-last`: convolutions on channels-last inputs and weights, with the
fused elementwise pass reading the channels-last output in place. Tasks written here; the
candidate must match each, keep the parameters' shapes and order, and stay channels-last
through the fused pass (no hidden copy back to NCHW) when the operands allow it."""
from __future__ import annotations

import textwrap

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
{init}

    def forward(self, x):
{body}
        return x


def get_inputs():
    return [torch.randn({shape})]


def get_init_inputs():
    return []
'''

# name -> (init, body, input shape, output stays channels-last)
CASES = {
    "conv2d_per_channel_tail": ("self.conv = nn.Conv2d(5, 12, 3, padding=1)\n"
                                "self.shift = nn.Parameter(torch.randn(12, 1, 1))",
                                "x = self.conv(x)\nx = torch.tanh(x) * 2.0 + self.shift\nx = F.gelu(x)",
                                "2, 5, 11, 9", True),
    "conv_transpose3d_scalar_tail": ("self.conv = nn.ConvTranspose3d(4, 6, 3, stride=2)",
                                     "x = self.conv(x)\nx = torch.sigmoid(x) - 0.5", "2, 4, 5, 6, 3", True),
    "operand_along_width_copies_back": ("self.conv = nn.Conv2d(3, 4, 3)\n"
                                        "self.w = nn.Parameter(torch.randn(7))",
                                        "x = self.conv(x)\nx = torch.relu(x) * self.w", "2, 3, 9, 9", False),
    "sequential_with_batchnorm": ("self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),"
                                  " nn.Conv2d(8, 8, 3, stride=2))",
                                  "x = self.features(x)\nx = torch.flatten(x, 1)", "3, 3, 16, 16", None),
}


def build(name: str) -> tuple[str, str]:
    init, body, shape, _ = CASES[name]
    src = TASK.format(init=textwrap.indent(init, " " * 8), body=textwrap.indent(body, " " * 8), shape=shape)
    result = apply("cpu-conv-channels-last", src)
    assert not isinstance(result, NoOp), result
    return src, result.code


def load(source: str) -> dict:
    ns: dict = {}
    exec(compile(source, "solution", "exec"), ns)  # the test's own generated code
    return ns


@pytest.mark.parametrize("name", sorted(CASES))
def test_channels_last_matches_the_task(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src, code = build(name)
    ref_ns, new_ns = load(src), load(code)
    torch.manual_seed(5)
    ref = ref_ns["Model"]()
    torch.manual_seed(5)
    new = new_ns["ModelNew"]()
    assert [p.shape for p in new.parameters()] == [p.shape for p in ref.parameters()]
    for seed in range(2):
        torch.manual_seed(seed)
        (x,) = ref_ns["get_inputs"]()
        with torch.no_grad():
            expected, got = ref(x), new(x.clone())
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    stays = CASES[name][3]
    if stays is not None:
        fmt = torch.channels_last if got.dim() == 4 else torch.channels_last_3d
        assert got.is_contiguous(memory_format=fmt) == stays and got.is_contiguous() != stays


def test_a_model_without_convolutions_is_a_noop():
    src = TASK.format(init=" " * 8 + "self.fc = nn.Linear(4, 4)", body=" " * 8 + "x = self.fc(x)", shape="2, 4")
    result = apply("cpu-conv-channels-last", src)
    assert isinstance(result, NoOp) and "convolution" in result.reason


def test_nested_convolutions_with_a_view_are_left_alone():
    """view() of a channels-last tensor raises: the forward's inputs are not converted then."""
    src = TASK.format(init=" " * 8 + "self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())",
                      body=" " * 8 + "x = self.features(x)\n" + " " * 8 + "x = x.view(x.size(0), -1)",
                      shape="2, 3, 8, 8")
    assert isinstance(apply("cpu-conv-channels-last", src), NoOp)
