"""What a failed check tells the agent (issue 16 item 6, for issue 23's prompts): where the
values differ, and the solution's own frames of an exception, next to the one-line reason."""
from __future__ import annotations

import pytest

from tests.redteam._kb import FIXTURES, run, write

pytest.importorskip("torch")

RELU = FIXTURES / "tasks" / "relu.py"

OFF_BY_A_BIT = '''
import torch
import torch.nn as nn

class ModelNew(nn.Module):
    def forward(self, x):
        y = torch.relu(x)
        y[0, 3] += 0.5
        return y
'''

RAISES_DEEP = '''
import torch
import torch.nn as nn

def helper(x):
    return x.view(-1, 7)  # the batch of 16 x 1024 does not split into rows of 7

class ModelNew(nn.Module):
    def forward(self, x):
        return helper(x)
'''


def test_incorrect_carries_where_the_values_differ(tmp_path):
    res = run(RELU, write(tmp_path, "off.py", OFF_BY_A_BIT))
    assert res["verdict"] == "incorrect", res.get("reason")
    m = res["checks"]["mismatch"]
    assert m["trial"] == "trial" and m["shapes"] == [[16, 1024]] and m["dist"] == ""
    assert m["max_abs_err"] == pytest.approx(0.5, abs=1e-5) and m["max_rel_err"] > 0
    index, expected, got = m["samples"][0]
    assert index == 3 and got == pytest.approx(expected + 0.5, abs=1e-5)
    assert len(m["samples"]) <= 5 and "\n" not in res["reason"]


def test_runtime_error_keeps_the_solutions_own_frames(tmp_path):
    res = run(RELU, write(tmp_path, "raises_deep.py", RAISES_DEEP))
    assert res["verdict"] == "runtime_error", res.get("reason")
    detail = res["checks"]["error_detail"]
    assert "raises_deep.py" in detail and "helper" in detail and "RuntimeError" in detail, detail
    assert "harness.py" not in detail and len(detail) <= 2000
