"""Rule `cpu-swap-submodules`: BatchNorm and pooling modules inside containers and block
classes run by the rules' kernels -- the Model's outputs and running statistics in training
mode, eval mode through the original modules, and kopt's evaluator agrees."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402
from tests.proposers.rule_solutions import load  # noqa: E402

# written for this test: two residual stages of a small image classifier
TASK = '''
import torch
import torch.nn as nn


class Stage(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(self.norm(self.conv(x)) + x)


class Model(nn.Module):
    def __init__(self, channels, classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
                                  nn.MaxPool2d(3, stride=2, padding=1))
        self.stages = nn.ModuleList([Stage(channels) for _ in range(2)])
        self.pool = nn.AvgPool2d(2)
        self.head = nn.Linear(channels * 4 * 4, classes)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        x = self.pool(x)
        return self.head(x.flatten(1))


def get_inputs():
    return [torch.randn(4, 3, 16, 16)]


def get_init_inputs():
    return [8, 5]
'''


def _counted(ns, monkeypatch) -> list[str]:
    ran: list[str] = []
    for lib, fn in (("_BN_LIB", "kopt_bn_train"), ("_POOL_LIB", "kopt_pool")):
        inner = getattr(ns[lib], fn)
        monkeypatch.setattr(ns[lib], fn, lambda *a, _f=inner, _n=fn: ran.append(_n) or _f(*a))
    return ran


def test_the_swapped_model_matches_in_training_and_eval_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    cand = apply("cpu-swap-submodules", TASK)
    assert not isinstance(cand, NoOp), cand
    ref_ns, ns = load(TASK), load(cand.code)
    ran = _counted(ns, monkeypatch)
    torch.manual_seed(42)
    ref = ref_ns["Model"](8, 5)
    torch.manual_seed(42)
    new = ns["ModelNew"](8, 5)
    assert sum(isinstance(m, ns["_KoptKernelModule"]) for m in new.modules()) == 5  # 3 BatchNorms, 2 pools
    for seed in range(2):
        torch.manual_seed(seed)
        (x,) = ref_ns["get_inputs"]()
        with torch.no_grad():
            torch.testing.assert_close(new(x), ref(x), atol=1e-4, rtol=1e-4)
    assert ran.count("kopt_bn_train") == 6 and ran.count("kopt_pool") == 4
    new_stats = [b for n, b in new.named_buffers() if n.endswith("running_var")]
    ref_stats = [b for n, b in ref.named_buffers() if n.endswith("running_var")]
    for a, b in zip(new_stats, ref_stats, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    new.eval()
    ref.eval()
    ran.clear()
    with torch.no_grad():
        torch.testing.assert_close(new(x), ref(x), atol=1e-4, rtol=1e-4)
    assert "kopt_bn_train" not in ran  # eval mode: the original BatchNorm runs


def test_the_evaluator_agrees(tmp_path, monkeypatch):
    from kopt.sandboxes.evaluator import EvalConfig, evaluate

    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "sol.py").write_text(apply("cpu-swap-submodules", TASK).code)
    r = evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(rounds=3, max_timing_s=1, trials=2,
                                                                         quality_seeds=2, confirm=False))
    assert r["correct"], r


def test_modules_forward_calls_itself_are_left_to_the_direct_rules():
    flat = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(x)
'''
    assert isinstance(apply("cpu-swap-submodules", flat), NoOp)
    assert not isinstance(apply("cpu-fuse-batch-norm-train", flat), NoOp)
