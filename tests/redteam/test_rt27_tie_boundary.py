"""Red team 27: the rounding spread (sandboxes/reference_error.py `_spread`) reads a
discontinuity as rounding. The inputs lie on a grid (multiples of 1/32), so some equal the
threshold of `q > 0.5` exactly; the float32 reference is exact there (its own error is 0), but
a 2-ulp nudge pushes about 40% of those ties over the threshold, and each flip moves its row's
sum by 0.5. The spread is ~0.4% of the output's norm (under the 1% cap), and 4x it covers the
classic boundary bug `q >= 0.5`, which adds 0.5 for every tie: a wrong candidate is `correct`.
Fix suggestion: measure the spread as the float32 rerun's distance from a float64 rerun on the
same nudged inputs (|f32(x') - f64(x')|, a sample of rounding error near x) rather than from
the unnudged float32 output (|f32(x') - f32(x)|, which also counts the function's own jumps).
Fixed: the spread is the float32 rerun's distance from a float64 rerun on the same nudged
inputs (`reference_error._spread`)."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")

from kopt.sandboxes.evaluator import EvalConfig, evaluate  # noqa: E402

# written for this test: the sum of each row's entries above 0.5; entries are exact multiples
# of 1/32 in [-2, 2), ~32 ties at 0.5 per row; every sum is exact in float32
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, q):
        return (q * (q > 0.5)).sum(dim=1)


def get_inputs():
    return [torch.randint(-64, 64, (32, 8192)).float() / 32]


def get_init_inputs():
    return []
'''
SOLUTION = '''
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, q):
        return (q * (q {op} 0.5)).sum(dim=1)
'''
CFG = dict(rounds=3, max_timing_s=1, trials=2, quality_seeds=2, confirm=False)


def _evaluate(tmp_path, solution: str) -> dict:
    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "sol.py").write_text(solution)
    return evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(**CFG))


def test_the_boundary_bug_at_exact_ties_is_incorrect(tmp_path):
    r = _evaluate(tmp_path, SOLUTION.format(op=">="))
    assert not r["correct"] and r["verdict"] == "incorrect", (r["verdict"], r.get("reason"), r.get("checks"))


def test_the_same_threshold_is_correct(tmp_path):
    r = _evaluate(tmp_path, SOLUTION.format(op=">"))
    assert r["correct"], (r["verdict"], r.get("reason"))
