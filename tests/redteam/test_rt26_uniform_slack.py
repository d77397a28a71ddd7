"""Red team 26: the float64 second opinion (sandboxes/reference_error.py) gives every element of
an output the same slack, FACTOR * max|ref32 - ref64|. A few ill-conditioned elements (row
sums whose float32 error is ~50) make that slack ~200 for all the other, tiny elements of the same
tensor, and the norm bound (4 * |own| + 1e-3 * |ref64|) is dominated by those elements too:
a candidate that computes only the ill-conditioned rows and returns zeros for the rest is `correct`.
Fixed: each element's slack is FACTOR times its own element's error plus the reference's
relative error rate times its magnitude (`within_reference_error`)."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")

from kopt.sandboxes.evaluator import EvalConfig, evaluate  # noqa: E402

# written for this test: rows 0-3 nearly cancel in pairs (float32's sums are ~50 off ~1e4
# answers); rows 4.. are small (sums ~0.005) -- every one of them is well conditioned
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return x.sum(dim=1, keepdim=True)


def get_inputs():
    n = 200000
    x = 1e-5 * torch.randn(10, n)
    x[:4] = 1.0e4
    x[:4, 1::2] = -1.0e4
    x[:4] += 100 * torch.randn(4, n)
    return [x]


def get_init_inputs():
    return []
'''
# rows 0-3 taken exactly; the six other rows never computed
ONLY_ROW0 = '''
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        out = torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device)
        out[:4] = x[:4].double().sum(dim=1, keepdim=True).float()
        return out
'''
# the honest, accurate solution (the second opinion's own use case)
ACCURATE = '''
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        return x.double().sum(dim=1, keepdim=True).float()
'''
CFG = dict(rounds=3, max_timing_s=1, trials=2, quality_seeds=2, confirm=False)


def _evaluate(tmp_path, solution: str) -> dict:
    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "sol.py").write_text(solution)
    return evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(**CFG))


def test_zeros_beside_one_ill_conditioned_element_are_incorrect(tmp_path):
    r = _evaluate(tmp_path, ONLY_ROW0)
    assert not r["correct"] and r["verdict"] == "incorrect", (r["verdict"], r["checks"])


def test_the_accurate_solution_stays_correct(tmp_path):
    r = _evaluate(tmp_path, ACCURATE)
    assert r["correct"], (r["verdict"], r.get("reason"), r["checks"])
