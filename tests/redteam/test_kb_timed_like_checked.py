"""Checked and timed calls look the same to the candidate (issue 16, item 3).

Before, only the correctness trials compared the inputs after the call and ran the repeat
pass; a solution that noticed it was being timed (several calls back to back) could
use its inputs as scratch space there and stay `correct`. Now every call is the same
request, and at least one timed round, drawn in secret after its calls, is checked like a
trial.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import FIXTURES, run, write

pytest.importorskip("torch")

SCRATCH_WHEN_TIMED = '''
import time
from collections import deque

import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.recent = deque(maxlen=3)

    def forward(self, x):
        now = time.monotonic()
        if self.recent and now - self.recent[-1] > 0.005:
            self.recent.clear()  # a gap: a new request
        self.recent.append(now)
        y = torch.relu(x)
        if len(self.recent) == self.recent.maxlen:
            x.zero_()  # 3 calls back to back (a trial sends at most 2): timed; the input is scratch space
        return y
'''


def test_inputs_used_as_scratch_only_while_timed_are_caught(tmp_path):
    res = run(FIXTURES / "tasks" / "relu.py", write(tmp_path, "scratch.py", SCRATCH_WHEN_TIMED), max_timing_s=4,
              round_ms=50)
    assert res["verdict"] == "incorrect", (res["verdict"], res.get("reason"), res["checks"].get("calls_per_round"))
    assert "timed round" in res["reason"] and "modified in place" in res["reason"], res["reason"]
