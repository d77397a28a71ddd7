"""Red team 27: the rounding spread can also veto an honest candidate. Before the spread, an
output passed the second opinion within 4x the reference's own float32 error; now a float leaf
whose spread exceeds REF_ERROR_CAP of its norm fails the whole call, even where the reference is
exact and the candidate equals it. Here the second output masks grid-valued inputs (multiples of
1/32) with `q > 0.5`: float32 is exact, but a 2-ulp nudge flips the ties at 0.5 (spread ~5% of
that leaf's norm). The first output is an ill-conditioned row sum the candidate takes in
float64 (nearer the exact answer than the reference, the second opinion's own use case): the
call is `incorrect` because of the other, exactly matched, output.
Fix suggestion: a spread past the cap should fall back to the own error (ignore the spread),
not refuse the opinion; better, measure it as |f32(x') - f64(x')| on the nudged inputs, so a
jump of the function itself is not counted as rounding at all.
Fixed: a spread past the cap, or not finite, is left out; the output is judged on the
reference's own error."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")

from kopt.sandboxes.evaluator import EvalConfig, evaluate  # noqa: E402

# written for this test: x's rows nearly cancel in pairs (the float32 sums are ~50 off ~1e4
# answers); q is exact multiples of 1/32, ~1/128 of them equal to the threshold
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x, q):
        return x.sum(dim=1, keepdim=True), q * (q > 0.5)


def get_inputs():
    n = 200000
    big = torch.full((4, n), 1.0e4)
    big[:, 1::2] = -1.0e4
    return [big + 100 * torch.randn(4, n), torch.randint(-64, 64, (64, 256)).float() / 32]


def get_init_inputs():
    return []
'''
# the sum taken in float64 (more accurate than the reference), the mask exactly the reference's
ACCURATE = '''
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x, q):
        return x.double().sum(dim=1, keepdim=True).float(), q * (q > 0.5)
'''
CFG = dict(rounds=3, max_timing_s=1, trials=2, quality_seeds=2, confirm=False)


def test_an_accurate_candidate_beside_an_exact_masked_output_is_correct(tmp_path):
    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "sol.py").write_text(ACCURATE)
    r = evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(**CFG))
    assert r["correct"], (r["verdict"], r.get("reason"))
