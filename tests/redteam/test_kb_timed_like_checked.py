"""Checked and timed calls look the same to the candidate (issue 16, item 3).

Before, only the correctness trials compared the inputs after the call and ran the repeat
pass; a solution that noticed it was being timed (several calls back to back) could
use its inputs as scratch space there and stay `correct`. Now every call is the same
request, and at least one timed round, drawn in secret after its calls, is checked like a
trial.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import FIXTURES, run

pytest.importorskip("torch")

SCRATCH_WHEN_TIMED = FIXTURES / "solutions" / "scratch_when_timed.py"


def test_inputs_used_as_scratch_only_while_timed_are_caught(tmp_path):
    res = run(FIXTURES / "tasks" / "relu.py", SCRATCH_WHEN_TIMED, max_timing_s=4,
              round_ms=50)
    assert res["verdict"] == "incorrect", (res["verdict"], res.get("reason"), res["checks"].get("calls_per_round"))
    assert "timed round" in res["reason"] and "modified in place" in res["reason"], res["reason"]
