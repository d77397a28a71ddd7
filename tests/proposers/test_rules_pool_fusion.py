"""Rules `cpu-fuse-batch-norm-pool` and `cpu-fuse-pool-global-mean`: pooling first, in one pass,
gives the task's outputs (and a training BatchNorm's running statistics) on random cases,
contiguous and channels-last, with negative BatchNorm weights and NaNs; what the kernels do
not cover runs the task's statements; and kopt's evaluator agrees on a written task."""
from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402
from tests.proposers.rule_solutions import load, watch  # noqa: E402

# written for these tests: a convolution, a BatchNorm in training mode, poolings, a tail
BN_TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv{nd}d(3, 6, 3)
        self.norm = nn.BatchNorm{nd}d(6)
        self.first = {first}
        self.second = {second}

    def forward(self, x):
        x = self.conv(x)
        x = self.norm(x)
        x = self.first(x)
        x = self.second(x)
        return torch.relu(x) * 2.0


def get_inputs():
    return [torch.randn({shape})]


def get_init_inputs():
    return []
'''
# a scale, poolings, then a mean over space, then a shift
MEAN_TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv{nd}d(3, 5, 3)
        self.factor = {factor}
        self.pool = {pool}
        self.spread = nn.AdaptiveAvgPool{nd}d({ones})

    def forward(self, x):
        x = self.conv(x)
        {scale}
        x = self.pool(x)
        {mean}
        x = x + 0.5
        return x


def get_inputs():
    return [torch.randn({shape})]


def get_init_inputs():
    return []
'''
SHAPES = {2: "3, 3, 19, 26", 3: "2, 3, 11, 14, 17"}


def _outputs(src: str, rule: str, tmp_path, monkeypatch, negate: bool = False, nan: bool = False,
             runs: int = 2):
    """(reference outputs, candidate outputs, reference model, candidate model, fast-path calls)."""
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    cand = apply(rule, src)
    assert not isinstance(cand, NoOp), cand
    ref_ns, ns = load(src), load(cand.code)
    used = watch(ns, "_kopt_bn_pool" if rule == "cpu-fuse-batch-norm-pool" else "_kopt_pool_mean")
    torch.manual_seed(0)
    ref = ref_ns["Model"]()
    torch.manual_seed(0)
    new = ns["ModelNew"]()
    if negate:  # some channels' scale negative: a max pooling becomes a min there
        with torch.no_grad():
            for m in (ref.norm, new.norm):
                m.weight.copy_(torch.tensor([1.5, -0.7, 0.3, -2.0, 0.0, 1.0]))
    expected, got = [], []
    for i in range(runs):
        torch.manual_seed(10 + i)
        (x,) = ref_ns["get_inputs"]()
        if nan:
            x[0, 0, 2:4] = float("nan")
        with torch.no_grad():
            expected.append(ref(x))
            got.append(new(x))
    return expected, got, ref, new, used


BN_CASES = [  # (nd, first, second)
    (3, "nn.AvgPool3d(2)", "nn.AvgPool3d(2)"),
    (3, "nn.MaxPool3d((2, 1, 3))", "nn.MaxPool3d(1)"),
    (2, "nn.AvgPool2d(3)", "nn.AvgPool2d((1, 2))"),
    (2, "nn.MaxPool2d(2)", "nn.MaxPool2d(2, stride=2)"),
]


@pytest.mark.parametrize("nd, first, second", BN_CASES)
@pytest.mark.parametrize("negate", [False, True], ids=["positive", "negative_weights"])
def test_batch_norm_then_pooling_matches_the_task(nd, first, second, negate, tmp_path, monkeypatch):
    src = BN_TASK.format(nd=nd, first=first, second=second, shape=SHAPES[nd])
    expected, got, ref, new, used = _outputs(src, "cpu-fuse-batch-norm-pool", tmp_path, monkeypatch, negate)
    assert used and all(used)
    for e, g in zip(expected, got):
        assert g.shape == e.shape
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(new.norm, name), getattr(ref.norm, name), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("nd", [2, 3])
def test_channels_last_convolution_output_is_read_in_place(nd, tmp_path, monkeypatch):
    src = BN_TASK.format(nd=nd, first=f"nn.MaxPool{nd}d(2)", second=f"nn.MaxPool{nd}d(1)", shape=SHAPES[nd])
    cand = apply("cpu-fuse-batch-norm-pool", src)
    assert "cpu-conv-channels-last" in cand.skills  # the convolution's output arrives channels-last
    expected, got, _, _, used = _outputs(src, "cpu-fuse-batch-norm-pool", tmp_path, monkeypatch, negate=True)
    assert all(used)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)


def test_what_the_kernel_does_not_cover_runs_as_written(tmp_path, monkeypatch):
    src = BN_TASK.format(nd=2, first="nn.MaxPool2d(3, stride=2)", second="nn.MaxPool2d(2)", shape=SHAPES[2])
    expected, got, _, _, used = _outputs(src, "cpu-fuse-batch-norm-pool", tmp_path, monkeypatch)
    assert used == [False, False]  # overlapping windows: not a per-window affine map
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e)
    src = BN_TASK.format(nd=2, first="nn.AvgPool2d(2)", second="nn.AvgPool2d(2)", shape=SHAPES[2])
    cand = apply("cpu-fuse-batch-norm-pool", src)
    ns = load(cand.code)
    used = watch(ns, "_kopt_bn_pool")
    torch.manual_seed(0)
    model = ns["ModelNew"]().eval()  # eval mode normalises with the running statistics: as written
    ref_ns = load(src)
    torch.manual_seed(0)
    ref = ref_ns["Model"]().eval()
    x = torch.randn(3, 3, 19, 26)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))
    assert used == [False]


MEAN_CASES = [  # (nd, factor, scale statement, pool, mean statement)
    (3, "2.0", "x = x / self.factor", "nn.MaxPool3d(2)", "x = self.spread(x)"),
    (3, "-0.5", "x = x * self.factor", "nn.MaxPool3d((1, 2, 3))", "x = torch.mean(x, dim=(2, 3, 4), keepdim=True)"),
    (2, "3", "x = self.factor * x", "nn.AvgPool2d(2)", "x = x.mean(dim=[-1, -2])"),
    (2, "1.0", "pass", "nn.MaxPool2d(3)", "x = torch.sum(x, dim=(2, 3), keepdim=True)"),
]


@pytest.mark.parametrize("nd, factor, scale, pool, mean", MEAN_CASES)
@pytest.mark.parametrize("nan", [False, True], ids=["finite", "nan"])
def test_pooling_then_mean_over_space_matches_the_task(nd, factor, scale, pool, mean, nan, tmp_path, monkeypatch):
    ones = "(" + ", ".join(["1"] * nd) + ")"
    src = MEAN_TASK.format(nd=nd, factor=factor, scale=scale, pool=pool, mean=mean, ones=ones, shape=SHAPES[nd])
    expected, got, _, _, used = _outputs(src, "cpu-fuse-pool-global-mean", tmp_path, monkeypatch, nan=nan)
    assert used and all(used)
    for e, g in zip(expected, got):
        assert g.shape == e.shape
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4, equal_nan=True)


def test_a_mean_over_part_of_space_or_a_tensor_operand_runs_as_written(tmp_path, monkeypatch):
    src = MEAN_TASK.format(nd=2, factor="torch.tensor(2.0)", scale="x = x * self.factor", pool="nn.MaxPool2d(2)",
                           mean="x = torch.mean(x, dim=(1, 3), keepdim=True)", ones="(1, 1)", shape=SHAPES[2])
    cand = apply("cpu-fuse-pool-global-mean", src)
    assert not isinstance(cand, NoOp)
    expected, got, _, _, used = _outputs(src, "cpu-fuse-pool-global-mean", tmp_path, monkeypatch)
    assert used == [False, False]
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e)


def test_random_pool_mean_shapes_match(tmp_path, monkeypatch):
    rng = random.Random(3)
    for _ in range(12):
        nd = rng.choice([2, 3])
        window = tuple(rng.randint(1, 3) for _ in range(nd))
        kind = rng.choice(["Max", "Avg"])
        shape = ", ".join(str(v) for v in [rng.randint(1, 3), 3] + [rng.randint(4, 13) for _ in range(nd)])
        src = MEAN_TASK.format(nd=nd, factor=str(rng.choice([0.5, -1.5, 3.0])), scale="x = x / self.factor",
                               pool=f"nn.{kind}Pool{nd}d({window})", mean="x = self.spread(x)",
                               ones="(" + ", ".join(["1"] * nd) + ")", shape=shape)
        expected, got, _, _, used = _outputs(src, "cpu-fuse-pool-global-mean", tmp_path, monkeypatch, runs=1)
        assert all(used)
        torch.testing.assert_close(got[0], expected[0], atol=1e-4, rtol=1e-4)


def test_no_such_region_is_a_noop():
    src = BN_TASK.format(nd=2, first="nn.Identity()", second="nn.Identity()", shape=SHAPES[2])
    assert isinstance(apply("cpu-fuse-batch-norm-pool", src), NoOp)
    src = MEAN_TASK.format(nd=2, factor="2.0", scale="x = x * self.factor", pool="nn.MaxPool2d(2)",
                           mean="x = torch.relu(x)", ones="(1, 1)", shape=SHAPES[2])
    assert isinstance(apply("cpu-fuse-pool-global-mean", src), NoOp)


def test_the_evaluator_agrees(tmp_path, monkeypatch):
    from kopt.sandboxes.evaluator import EvalConfig, evaluate

    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = BN_TASK.format(nd=3, first="nn.AvgPool3d(2)", second="nn.AvgPool3d(2)", shape="4, 3, 18, 18, 18")
    (tmp_path / "task.py").write_text(src)
    (tmp_path / "sol.py").write_text(apply("cpu-fuse-batch-norm-pool", src).code)
    r = evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(rounds=3, max_timing_s=1, trials=2,
                                                                         quality_seeds=2, confirm=False))
    assert r["correct"], r
