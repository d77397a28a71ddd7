"""The second opinion on an output that misses the fixed tolerance (sandboxes/reference_error.py):
a candidate nearer the exact answer than the float32 reference is `correct`; one further from
it than FACTOR times the reference's own error is still `incorrect`."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kopt.sandboxes.checks import Tolerance  # noqa: E402
from kopt.sandboxes.evaluator import EvalConfig, evaluate  # noqa: E402
from kopt.sandboxes.reference_error import FACTOR, within_reference_error  # noqa: E402

# written for this test: a sum along long rows of values that nearly cancel in pairs. Float32's
# vectorised sum keeps same-signed lanes apart, so the reference is ~40-60 off the exact sum
# (~1e4): well past atol + rtol * |sum|, yet 0.05% of it.
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return x.sum(dim=1, keepdim=True)


def get_inputs():
    n = 200000
    big = torch.full((4, n), 1.0e4)
    big[:, 1::2] = -1.0e4
    return [big + 100 * torch.randn(4, n)]


def get_init_inputs():
    return []
'''
# the same sum taken in float64: nearer the exact answer than the reference
ACCURATE = '''
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        return x.double().sum(dim=1, keepdim=True).float(){wrong}
'''
CFG = dict(rounds=3, max_timing_s=1, trials=2, quality_seeds=2, confirm=False)


def _evaluate(tmp_path, solution: str) -> dict:
    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "sol.py").write_text(solution)
    return evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(**CFG))


def test_a_candidate_nearer_the_exact_answer_than_the_reference_is_correct(tmp_path):
    r = _evaluate(tmp_path, ACCURATE.format(wrong=""))
    assert r["correct"], (r["verdict"], r.get("reason"))
    assert r["checks"].get("float64_reference", 0) >= 1, r["checks"]  # the fixed tolerance alone said no


def test_a_candidate_further_off_than_the_reference_error_allows_is_incorrect(tmp_path):
    # 1% off: inside the elementwise envelope (4x the reference's error) here, not in norm
    r = _evaluate(tmp_path, ACCURATE.format(wrong=" * 1.01"))
    assert not r["correct"] and r["verdict"] == "incorrect", r


def _pair(own: float, off: float, n: int = 1000):
    """(float32 reference, float64 answer, candidate): the reference OWN away from the answer
    in a random direction, the candidate OFF times as far in the same direction."""
    gen = torch.Generator().manual_seed(0)
    exact = torch.randn(n, dtype=torch.float64, generator=gen) * 10
    noise = torch.randn(n, dtype=torch.float64, generator=gen)
    return (exact + own * noise).float(), exact, (exact + off * own * noise).float()


def test_the_envelope_is_the_reference_error_times_the_factor():
    tol = Tolerance(1e-6, 1e-6)
    assert within_reference_error(*_pair(own=1e-3, off=0.3), tol)  # nearer the answer
    assert within_reference_error(*_pair(own=1e-3, off=FACTOR / 2), tol)
    assert not within_reference_error(*_pair(own=1e-3, off=FACTOR * 3), tol)


def test_small_elements_borrow_no_slack_from_ill_conditioned_ones():
    gen = torch.Generator().manual_seed(1)
    exact = torch.cat([1000 * torch.randn(500, dtype=torch.float64, generator=gen),
                       0.01 * torch.randn(500, dtype=torch.float64, generator=gen)])
    ref32 = exact.float()
    ref32[:10] += 50.0  # ten large answers the reference gets 50 wrong (0.7% of its norm)
    new = exact.float()
    new[500:] = 0.0  # the small answers, exact in the reference, all missing
    assert not within_reference_error(ref32, exact, new, Tolerance())
    new[500:] = exact[500:].float()
    assert within_reference_error(ref32, exact, new, Tolerance())


def test_no_second_opinion_where_the_reference_itself_is_far_off():
    # a float64 rerun 5% away is not rounding: state the forward changed, or draws that differ
    assert not within_reference_error(*_pair(own=0.5, off=1.0), Tolerance())


def test_non_finite_or_mismatched_outputs_get_no_second_opinion():
    ref32, ref64, new = _pair(own=1e-3, off=1.0)
    bad = new.clone()
    bad[3] = float("nan")
    assert not within_reference_error(ref32, ref64, bad, Tolerance())
    assert not within_reference_error([ref32], [ref64], [new, new], Tolerance())
    assert not within_reference_error(ref32, ref64, new[:-1], Tolerance())
