"""The rules proposer's fused norm kernels (GroupNorm, InstanceNorm, LayerNorm, softmax,
log_softmax, with the elementwise statements around them) compute what the reference does."""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.cpu_codegen import generate  # noqa: E402
from kopt.agent.proposers.rules.cpu_norm_analysis import NormRun, find_norm_runs  # noqa: E402
from kopt.agent.proposers.rules.forward_analysis import FusedRun, forward_of, model_class  # noqa: E402
from kopt.agent.proposers.rules.kernelbench_rules import FLAGS, RulesProposer, plans  # noqa: E402

TEMPLATE = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, channels, groups, scale):
        super().__init__()
{init}

    def forward(self, x):
{forward}
        return x


def get_inputs():
    return [torch.randn({shape})]


def get_init_inputs():
    return [{channels}, {groups}, 0.75]
'''

CONV = "self.conv = nn.Conv2d(3, channels, 3)"
LINEAR = "self.linear = nn.Linear(12, channels)"
CASES = {
    # name: (init lines, forward lines, input shapes, channels, groups, expected kinds)
    "conv_groupnorm_relu": (
        [CONV, "self.gn = nn.GroupNorm(groups, channels)"],
        ["x = self.conv(x)", "x = self.gn(x)", "x = torch.relu(x)"],
        ["2, 3, 9, 11", "1, 3, 12, 7"], 8, 4, ["group_norm"]),
    "conv_groupnorm_no_affine_swish_bias": (
        [CONV, "self.gn = nn.GroupNorm(groups, channels, affine=False, eps=1e-3)",
         "self.bias = nn.Parameter(torch.randn(channels, 1, 1))"],
        ["x = self.conv(x)", "x = self.gn(x)", "x = x * torch.sigmoid(x)", "x = x + self.bias"],
        ["2, 3, 9, 11"], 6, 3, ["group_norm"]),
    "pre_ops_groupnorm": (
        [CONV, "self.gn = nn.GroupNorm(groups, channels)", "self.scale = scale",
         "self.bias = nn.Parameter(torch.randn(channels, 1, 1))"],
        ["x = self.conv(x)", "x = x * self.scale", "x = x + self.bias", "x = F.leaky_relu(x, 0.1)",
         "x = self.gn(x)", "x = F.gelu(x)", "x = x * self.bias"],
        ["2, 3, 9, 11"], 8, 2, ["group_norm"]),
    "groupnorm_small_spatial": (  # inner < 16: the per-row kernel with per-element affine
        [CONV, "self.gn = nn.GroupNorm(groups, channels)", "self.bias = nn.Parameter(torch.randn(channels, 1, 1))"],
        ["x = self.conv(x)", "x = x - self.bias", "x = self.gn(x)", "x = torch.tanh(x) * self.bias"],
        ["3, 3, 5, 4", "2, 3, 3, 3"], 10, 5, ["group_norm"]),
    "linear_groupnorm_swish_mul_swish": (  # 2-D GroupNorm: rows of channels/groups floats
        [LINEAR, "self.gn = nn.GroupNorm(groups, channels)", "self.w = nn.Parameter(torch.randn(channels))"],
        ["x = self.linear(x)", "x = self.gn(x)", "x = x * torch.sigmoid(x)", "x = x * self.w",
         "x = x * torch.sigmoid(x)"],
        ["5, 12", "33, 12"], 24, 6, ["group_norm"]),
    "conv1d_groupnorm_hardtanh": (
        ["self.conv = nn.Conv1d(3, channels, 3)", "self.gn = nn.GroupNorm(groups, channels)"],
        ["x = self.conv(x)", "x = self.gn(x)", "x = F.hardtanh(x, -0.5, 0.5)"],
        ["3, 3, 37"], 9, 3, ["group_norm"]),
    "instancenorm2d_div": (
        [CONV, "self.inorm = nn.InstanceNorm2d(channels)"],
        ["x = self.conv(x)", "x = self.inorm(x)", "x = x / 2.0"],
        ["2, 3, 9, 11", "2, 3, 4, 5"], 5, 1, ["instance_norm"]),
    "instancenorm2d_affine_mish": (
        [CONV, "self.inorm = nn.InstanceNorm2d(channels, affine=True, eps=1e-4)"],
        ["x = self.conv(x)", "x = self.inorm(x)", "x = F.mish(x)"],
        ["2, 3, 10, 13"], 7, 1, ["instance_norm"]),
    "instancenorm_running_stats_falls_back": (
        [CONV, "self.inorm = nn.InstanceNorm2d(channels, track_running_stats=True)"],
        ["x = self.conv(x)", "x = self.inorm(x)", "x = torch.relu(x)"],
        ["2, 3, 9, 11"], 4, 1, ["instance_norm"]),
    "linear_layernorm_gelu_scale": (
        [LINEAR, "self.ln = nn.LayerNorm(channels)", "self.scale = scale"],
        ["x = self.linear(x)", "x = self.ln(x)", "x = F.gelu(x)", "x = x * self.scale"],
        ["7, 12", "1, 12"], 37, 1, ["layer_norm"]),
    "conv_layernorm_last_two_dims_no_affine": (
        [CONV, "self.ln = nn.LayerNorm((7, 9), elementwise_affine=False)"],
        ["x = self.conv(x)", "x = self.ln(x)", "x = torch.relu(x)"],
        ["2, 3, 9, 11"], 4, 1, ["layer_norm"]),
    "layernorm_no_bias_per_column_operand": (
        [LINEAR, "self.ln = nn.LayerNorm(channels, bias=False)", "self.b = nn.Parameter(torch.randn(channels))"],
        ["x = self.linear(x)", "x = torch.clamp(x, -1.0, 1.0)", "x = self.ln(x)", "x = x + self.b"],
        ["6, 12"], 19, 1, ["layer_norm"]),
    "many_operands_layernorm": (  # > 4 operands: numbers are expanded to arrays too
        [LINEAR, "self.ln = nn.LayerNorm(channels)", "self.a = scale", "self.b = nn.Parameter(torch.randn(channels))",
         "self.c = nn.Parameter(torch.tensor(0.3))", "self.d = 2", "self.e = nn.Parameter(torch.randn(1, channels))"],
        ["x = self.linear(x)", "x = x * self.a + self.b", "x = self.ln(x)", "x = x * self.c - self.d",
         "x = F.silu(x) * self.e"],
        ["6, 12"], 21, 1, ["layer_norm"]),
    "softmax_scale_bias": (
        [LINEAR, "self.scale = scale", "self.b = nn.Parameter(torch.randn(channels))"],
        ["x = self.linear(x)", "x = x * self.scale", "x = torch.softmax(x, dim=-1)", "x = x * 2.0 + self.b"],
        ["5, 12", "2, 12"], 45, 1, ["softmax"]),
    "log_softmax_functional_positive_dim": (
        [LINEAR],
        ["x = self.linear(x)", "x = F.log_softmax(x, dim=1)", "x = torch.abs(x)"],
        ["9, 12"], 33, 1, ["log_softmax"]),
    "softmax_method_and_module": (
        [LINEAR, "self.sm = nn.LogSoftmax(dim=-1)"],
        ["x = self.linear(x)", "x = x.softmax(-1)", "x = x - 0.01", "x = self.sm(x)", "x = x * x"],
        ["4, 12"], 17, 1, ["softmax", "log_softmax"]),
    "softmax_over_channels": (  # the channel kernel (softmax_channels)
        [CONV],
        ["x = self.conv(x)", "x = torch.softmax(x, dim=1)", "x = x + 1.0"],
        ["2, 3, 9, 11"], 6, 1, ["softmax"]),
    "softmax_over_a_spatial_dim_falls_back": (
        [CONV],
        ["x = self.conv(x)", "x = torch.softmax(x, dim=2)", "x = x + 1.0"],
        ["2, 3, 9, 11"], 6, 1, ["softmax"]),
    "norm_on_the_input_is_not_in_place": (
        ["self.gn = nn.GroupNorm(groups, channels)"],
        ["x = self.gn(x)", "x = torch.relu(x)"],
        ["2, 8, 5, 9"], 8, 2, ["group_norm"]),
    "two_norms_and_a_plain_run": (
        [CONV, "self.gn = nn.GroupNorm(groups, channels)", "self.ln = nn.LayerNorm(9)"],
        ["x = self.conv(x)", "x = torch.exp(x * 0.1)", "x = self.gn(x)", "x = torch.relu(x)",
         "x = x.transpose(1, 2)", "x = self.ln(x)", "x = torch.sigmoid(x)"],
        ["2, 3, 9, 11"], 8, 4, ["group_norm", "layer_norm"]),
}


def source(name: str, shape: str | None = None) -> str:
    init, fwd, shapes, channels, groups, _ = CASES[name]
    return TEMPLATE.format(init=textwrap.indent("\n".join(init), " " * 8),
                           forward=textwrap.indent("\n".join(fwd), " " * 8),
                           shape=shape or shapes[0], channels=channels, groups=groups)


def namespaces(src: str):
    ref_ns, new_ns = {}, {}
    exec(compile(src, "task", "exec"), ref_ns)
    [(_, runs, _), *_] = plans(src)
    exec(compile(generate(src, runs, FLAGS), "solution", "exec"), new_ns)
    return ref_ns, new_ns


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kopt-cache"))


def _recording(run_norm, taken: list):
    def wrapper(*args, **kwargs):
        out = run_norm(*args, **kwargs)
        taken.append(out is not None)
        return out
    return wrapper


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_norm_matches_reference(name):
    kinds = CASES[name][5]
    src = source(name)
    norms = find_norm_runs(model_class(ast.parse(src)))
    assert [r.kind for r in norms] == kinds
    for shape in CASES[name][2]:
        ref_ns, new_ns = namespaces(source(name, shape))
        torch.manual_seed(42)
        ref = ref_ns["Model"](*ref_ns["get_init_inputs"]())
        torch.manual_seed(42)
        new = new_ns["ModelNew"](*ref_ns["get_init_inputs"]())
        for p in ref.parameters():  # non-trivial affine parameters
            torch.manual_seed(p.numel())
            p.data.add_(torch.randn_like(p) * 0.5)
        new.load_state_dict(ref.state_dict())
        taken = []
        new_ns["_run_norm"] = _recording(new_ns["_run_norm"], taken)
        for seed in range(3):
            torch.manual_seed(seed)
            (x,) = ref_ns["get_inputs"]()
            x = x * (1 + seed) + seed  # scaled and shifted: means far from 0
            before = x.clone()
            with torch.no_grad():
                expected, got = ref(x), new(x)
            torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
            assert torch.equal(x, before), "fused kernel modified the input"
        assert taken and all(taken) == ("falls_back" not in name), taken


def test_runs_absorb_the_elementwise_statements_around_the_norm():
    src = source("pre_ops_groupnorm")
    [run] = find_norm_runs(model_class(ast.parse(src)))
    # x*scale, +bias, leaky_relu are cheap (recomputed per pass); gelu and *bias follow the norm
    assert (run.start, run.norm, run.stop) == (1, 4, 7) and run.fresh
    assert len(run.pre) == 3 and len(run.post) == 2
    assert [o.python for o in run.operands] == ["self.scale", "self.bias"]


def test_expensive_head_stays_a_separate_elementwise_run():
    src = source("two_norms_and_a_plain_run")
    [(_, runs, skills), (_, plain, _)] = plans(src)
    assert [type(r) for r in runs] == [FusedRun, NormRun, NormRun]
    assert [(r.start, r.stop) for r in runs] == [(1, 2), (2, 4), (5, 7)]
    assert not runs[2].fresh  # after a transpose: a view, never overwritten
    assert all(isinstance(r, FusedRun) for r in plain) and "cpu-fuse-norm-epilogue" in skills


def test_grad_mode_falls_back_to_autograd():
    ref_ns, new_ns = namespaces(source("linear_layernorm_gelu_scale"))
    torch.manual_seed(0)
    new = new_ns["ModelNew"](*ref_ns["get_init_inputs"]())
    torch.manual_seed(0)
    ref = ref_ns["Model"](*ref_ns["get_init_inputs"]())
    x = torch.randn(4, 12)
    got = new(x)
    assert got.grad_fn is not None
    torch.testing.assert_close(got, ref(x))


def test_unrecognised_norms_are_left_alone():
    src = TEMPLATE.format(
        init=textwrap.indent("self.bn = nn.BatchNorm2d(channels)\nself.gn = nn.GroupNorm(groups, channels)\n"
                             "self.gn = nn.GroupNorm(1, channels)", " " * 8),
        forward=textwrap.indent("x = self.bn(x)\nx = self.gn(x)\nx = torch.softmax(x)\n"
                                "x = F.softmax(x, dim=-1, dtype=torch.float64)\ny = torch.softmax(x, -1)",
                                " " * 8),
        shape="2, 4, 3, 3", channels=4, groups=2)
    assert find_norm_runs(model_class(ast.parse(src))) == []
    assert forward_of(model_class(ast.parse(src)))


def test_proposer_offers_norm_fusion_and_plain_fusion():
    src = source("conv_groupnorm_no_affine_swish_bias")
    from kopt.agent.core import Candidate

    root = Candidate(code=src, plan_step="reference")
    kids = RulesProposer().propose({"task_source": src, "parent": root})
    # the conv first gets the channels-last rewrite (tried before the fusion templates)
    assert [k.skills[0] for k in kids] == ["cpu-conv-channels-last", "cpu-fuse-norm-epilogue",
                                           "cpu-fuse-elementwise-chain"]
    norm, plain = kids[1:]
    assert "group_norm" in norm.plan_step and "_run_norm" in norm.code
    assert "_run_norm" not in plain.code and "_run_fused" in plain.code


LEVEL2 = sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "examples" / "level2_cpu").glob("*.py"))


@pytest.mark.parametrize("path", LEVEL2, ids=[p.stem for p in LEVEL2])
def test_level2_examples_are_fused_correctly(path):
    src = path.read_text()
    steps = plans(src)
    assert steps, "the rules recognise nothing in this example"
    ref_ns, new_ns = namespaces(src)
    torch.manual_seed(42)
    ref = ref_ns["Model"](*ref_ns["get_init_inputs"]())
    torch.manual_seed(42)
    new = new_ns["ModelNew"](*ref_ns["get_init_inputs"]())
    torch.manual_seed(7)
    inputs = ref_ns["get_inputs"]()
    with torch.no_grad():
        torch.testing.assert_close(new(*inputs), ref(*inputs), atol=1e-4, rtol=1e-4)
