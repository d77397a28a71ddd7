"""Rule `cpu-fuse-batch-norm-train`: a BatchNorm in training mode as one C++ kernel -- the
same output and running statistics as the module, the module itself wherever the kernel
does not apply, and kopt's evaluator agrees the solution is correct."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402
from tests.proposers.rule_solutions import load, watch  # noqa: E402

# written for this test: a projection, a BatchNorm of each kind, an activation after it
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.mix = nn.Conv1d(channels, channels, 1)
        self.norm = nn.{kind}(channels{kwargs})

    def forward(self, x):
        x = x * 3.0 + 1.5
        y = self.norm(x)
        return torch.relu(y) - 0.25


def get_inputs():
    return [torch.randn({shape})]


def get_init_inputs():
    return [6]
'''
CASES = {
    "2d_affine": ("BatchNorm2d", "", "5, 6, 9, 7"),
    "3d_no_affine_cumulative": ("BatchNorm3d", ", affine=False, momentum=None", "3, 6, 4, 5, 6"),
    "1d_sequence_no_running_stats": ("BatchNorm1d", ", track_running_stats=False, eps=1e-3", "4, 6, 33"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_training_batch_norm_matches_the_module(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    kind, kwargs, shape = CASES[name]
    src = TASK.format(kind=kind, kwargs=kwargs, shape=shape)
    cand = apply("cpu-fuse-batch-norm-train", src)
    assert not isinstance(cand, NoOp), cand
    ref_ns, ns = load(src), load(cand.code)
    used = watch(ns, "_kopt_batch_norm")
    ref, new = ref_ns["Model"](6), ns["ModelNew"](6)
    new.load_state_dict(ref.state_dict())
    if ref.norm.affine:
        with torch.no_grad():
            ref.norm.weight.uniform_(0.5, 2.0)
            ref.norm.bias.uniform_(-1.0, 1.0)
        new.load_state_dict(ref.state_dict())
    ran = []
    inner = ns["_BN_LIB"].kopt_bn_train
    monkeypatch.setattr(ns["_BN_LIB"], "kopt_bn_train", lambda *a: ran.append(1) or inner(*a))
    for seed in range(3):  # the running statistics carry over from call to call
        torch.manual_seed(seed)
        (x,) = ref_ns["get_inputs"]()
        with torch.no_grad():
            expected, got = ref(x), new(x)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        for a, b in zip(ref.state_dict().values(), new.state_dict().values()):
            torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)
    assert len(ran) == 3 and len(used) == 3
    ref.eval()
    new.eval()
    with torch.no_grad():  # eval mode: the running statistics, as the module does
        torch.testing.assert_close(new(x), ref(x), atol=1e-5, rtol=1e-5)
    assert len(ran) == 3 or not ref.norm.track_running_stats


def test_the_evaluator_agrees(tmp_path, monkeypatch):
    from kopt.sandboxes.evaluator import EvalConfig, evaluate

    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = TASK.format(kind="BatchNorm2d", kwargs="", shape="4, 6, 32, 32")
    cand = apply("cpu-fuse-batch-norm-train", src)
    (tmp_path / "task.py").write_text(src)
    (tmp_path / "sol.py").write_text(cand.code)
    r = evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(rounds=3, max_timing_s=1, trials=2,
                                                                         quality_seeds=2, confirm=False))
    assert r["correct"], r


def test_autograd_and_small_batches_run_the_module(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = TASK.format(kind="BatchNorm1d", kwargs="", shape="1, 6, 1")
    ns = load(apply("cpu-fuse-batch-norm-train", src).code)
    used = []
    inner = ns["_BN_LIB"].kopt_bn_train
    monkeypatch.setattr(ns["_BN_LIB"], "kopt_bn_train", lambda *a: used.append(1) or inner(*a))
    new = ns["ModelNew"](6)
    out = new(torch.randn(3, 6, 8))  # grad enabled, weights need it: the module runs
    assert out.requires_grad and not used
    with pytest.raises(ValueError):  # one value per channel: the module's own error
        with torch.no_grad():
            new(torch.randn(1, 6, 1))


def test_no_batch_norm_is_a_noop():
    src = TASK.format(kind="GroupNorm", kwargs="", shape="4, 6, 8")
    src = src.replace("nn.GroupNorm(channels", "nn.GroupNorm(2, channels")
    assert isinstance(apply("cpu-fuse-batch-norm-train", src), NoOp)
    called_in_init_only = TASK.format(kind="BatchNorm1d", kwargs="", shape="4, 6, 8").replace("self.norm(x)", "x")
    assert isinstance(apply("cpu-fuse-batch-norm-train", called_in_init_only), NoOp)


def test_only_a_spatial_batch_norm_is_tried_first():
    """A BatchNorm1d after a Linear sees 2-D inputs the kernel leaves to the module: its
    candidate waits behind the fusion templates; BatchNorm2d / 3d go first."""
    expected = {"2d_affine": True, "3d_no_affine_cumulative": True, "1d_sequence_no_running_stats": False}
    for name, first in expected.items():
        kind, kwargs, shape = CASES[name]
        assert apply("cpu-fuse-batch-norm-train", TASK.format(kind=kind, kwargs=kwargs, shape=shape)).try_first is first
