"""Rule `cpu-separable-pool`: MaxPool / AvgPool 1d/2d/3d modules by a C++ kernel that pools
one axis at a time -- the module's value for every kernel, stride, padding, dilation,
ceil_mode, count_include_pad and divisor_override PyTorch accepts (NaN included), the module
itself for what the kernel leaves (return_indices, autograd), and kopt's evaluator agrees."""
from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.registry import NoOp, apply  # noqa: E402
from tests.proposers.rule_solutions import load  # noqa: E402

# written for this test: a feature map shifted, pooled, then pooled again by another kind
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.down = nn.MaxPool2d(kernel_size=k, stride=2, padding=1, dilation=2)
        self.smooth = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x):
        x = x - 0.25
        x = self.down(x)
        return self.smooth(x)


def get_inputs():
    return [torch.randn(3, 5, 70, 83)]


def get_init_inputs():
    return [3]
'''


@pytest.fixture(scope="module")
def pool_helper(tmp_path_factory):
    """The rule's `_kopt_pool` as a solution file defines it."""
    cand = apply("cpu-separable-pool", TASK)
    assert not isinstance(cand, NoOp), cand
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KOPT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kopt-cache"))
        return load(cand.code)


def _random_pool(rng: random.Random):
    nd, is_max = rng.choice([1, 2, 3]), rng.random() < 0.5
    k = tuple(rng.randint(1, 5) for _ in range(nd))
    s = tuple(rng.randint(1, 3) for _ in range(nd))
    d = tuple(rng.randint(1, 3) for _ in range(nd)) if is_max else (1,) * nd
    kw = {"kernel_size": k, "stride": s, "padding": tuple(rng.randint(0, ((a - 1) * e + 1) // 2) for a, e in zip(k, d)),
          "ceil_mode": rng.random() < 0.3}
    if is_max:
        kw["dilation"] = d
    else:
        kw["count_include_pad"] = rng.random() < 0.5
        if nd > 1 and rng.random() < 0.2:
            kw["divisor_override"] = rng.randint(1, 7)
    mod = getattr(torch.nn, f"{'Max' if is_max else 'Avg'}Pool{nd}d")(**kw)
    # the last axis sometimes long enough for the kernel's 64-wide register blocks
    size = [rng.randint(1, 13) for _ in range(nd - 1)] + [rng.choice([rng.randint(1, 13), rng.randint(60, 300)])]
    return mod, [rng.randint(1, 3), rng.randint(1, 4)][:rng.choice([1, 2])] + size


def test_every_pooling_pytorch_accepts_matches_the_module(pool_helper):
    pool, rng, checked = pool_helper["_kopt_pool"], random.Random(7), 0
    for _ in range(400):
        mod, shape = _random_pool(rng)
        x = torch.randn(*shape)
        if rng.random() < 0.2:
            x[tuple(rng.randrange(n) for n in shape)] = float("nan")
        try:
            expected = mod(x)
        except RuntimeError:
            continue  # PyTorch rejects it (output size 0): the helper hands it to the module too
        got = pool(mod, x)
        assert got.shape == expected.shape, (mod, shape)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5, equal_nan=True, msg=f"{mod} on {shape}")
        checked += 1
    assert checked > 250


def test_the_kernel_runs_and_the_module_covers_the_rest(pool_helper, monkeypatch):
    lib, ran = pool_helper["_POOL_LIB"], []
    inner = lib.kopt_pool
    monkeypatch.setattr(lib, "kopt_pool", lambda *a: ran.append(1) or inner(*a))
    mod = torch.nn.MaxPool2d(3, return_indices=True)
    x = torch.randn(2, 3, 9, 9)
    values, indices = pool_helper["_kopt_pool"](mod, x)  # indices asked for: the module's pair
    assert torch.equal(values, mod(x)[0]) and indices.dtype == torch.int64 and not ran
    grad = pool_helper["_kopt_pool"](torch.nn.AvgPool1d(2), torch.randn(2, 8, requires_grad=True))
    assert grad.requires_grad and not ran
    pool_helper["_kopt_pool"](torch.nn.AvgPool1d(2), torch.randn(2, 8))
    assert ran == [1]


def test_the_solution_matches_the_task(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    cand = apply("cpu-separable-pool", TASK)
    assert "_kopt_pool(self.down, x)" in cand.code and "_kopt_pool(self.smooth, x)" in cand.code
    ref_ns, ns = load(TASK), load(cand.code)
    ref, new = ref_ns["Model"](3), ns["ModelNew"](3)
    torch.manual_seed(0)
    (x,) = ref_ns["get_inputs"]()
    with torch.no_grad():
        torch.testing.assert_close(new(x), ref(x), atol=1e-5, rtol=1e-5)


def test_the_evaluator_agrees(tmp_path, monkeypatch):
    from kopt.sandboxes.evaluator import EvalConfig, evaluate

    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "sol.py").write_text(apply("cpu-separable-pool", TASK).code)
    r = evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(rounds=3, max_timing_s=1, trials=2,
                                                                         quality_seeds=2, confirm=False))
    assert r["correct"], r


def test_no_pooling_module_is_a_noop():
    src = TASK.replace("nn.MaxPool2d", "nn.Identity").replace("nn.AvgPool2d", "nn.Identity")
    assert isinstance(apply("cpu-separable-pool", src), NoOp)
