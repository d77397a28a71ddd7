"""Red team 26: `checks.compare` stops at the first output leaf that misses, so the leaves after
it are never compared; the float64 second opinion (reference_error.within_reference_error) then
skips every non-tensor leaf as "compared exactly before" and never looks at a later tensor's
dtype. A candidate that can tell when its first output will miss the fixed tolerance (its own
float32 sum is far from its float64 one) returns the accurate sum there, with any scalar, or a
tensor of the wrong dtype, after it -- and is `correct`.
Fixed: the second opinion compares every leaf, non-tensor values, dtypes and integer tensors exactly."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")

from kopt.sandboxes.evaluator import EvalConfig, evaluate  # noqa: E402
from tests.sandboxes.test_reference_error import TASK as REFERENCE_TASK  # noqa: E402

# the ill-conditioned row sum of tests/sandboxes/test_reference_error.py (float32 is ~50 off a
# ~1e4 answer), with a second output after it
TASK = REFERENCE_TASK.replace("return x.sum(dim=1, keepdim=True)", "return x.sum(dim=1, keepdim=True), {second}")
# where the float32 sum misses the fixed tolerance (so the second opinion will judge this call), the
# sum taken in float64 -- nearer the exact answer than the reference -- and a wrong second output;
# elsewhere the reference's own answer
SOLUTION = '''
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        s32, s64 = x.sum(dim=1, keepdim=True), x.double().sum(dim=1, keepdim=True)
        if bool(((s32.double() - s64).abs() > 1e-4 + 1e-4 * s64.abs()).any()):
            return s64.float(), {wrong}
        return s32, {right}
'''
CFG = dict(rounds=3, max_timing_s=1, trials=2, quality_seeds=2, confirm=False)


def _evaluate(tmp_path, ref_second: str, new_second: str) -> dict:
    (tmp_path / "task.py").write_text(TASK.format(second=ref_second))
    (tmp_path / "sol.py").write_text(SOLUTION.format(right=ref_second, wrong=new_second))
    return evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(**CFG))


def test_a_wrong_scalar_after_a_rescued_output_is_incorrect(tmp_path):
    # the reference counts the positive elements; the candidate says 12345
    r = _evaluate(tmp_path, "int((x > 0).sum())", "12345")
    assert not r["correct"] and r["verdict"] == "incorrect", (r["verdict"], r["checks"])


def test_a_wrong_dtype_after_a_rescued_output_is_incorrect(tmp_path):
    r = _evaluate(tmp_path, "x.mean(dim=1)", "x.double().mean(dim=1)")
    assert not r["correct"] and r["verdict"] == "incorrect", (r["verdict"], r["checks"])


def test_a_right_scalar_after_a_rescued_output_is_correct(tmp_path):
    r = _evaluate(tmp_path, "int((x > 0).sum())", "int((x > 0).sum())")
    assert r["correct"], (r["verdict"], r.get("reason"), r["checks"])
