"""Red team round 5: the candidate time budget (call_timeout_s + 20x the reference's time)
spares Triton on the CPU, whose interpreter is far slower than any reference. The exemption
was granted on what the source *says*: `import triton` and a forward sleeping 3 s per call
(never launching a kernel) ran every trial, 74 s, ending `unverified`, where the same forward
without the import ended `timeout` after 12 s (call_timeout_s 10). The exemption now needs a
Triton launch counted in the base trial.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import FIXTURES, run, world_readable, write

pytest.importorskip("torch")

GHOST_TRITON_SLEEPER = '''
import time
import torch
import torch.nn as nn
import triton  # noqa: F401 - only so that the scan calls this a Triton solution


class ModelNew(nn.Module):
    def forward(self, x):
        time.sleep(3)
        return torch.relu(x)
'''


def test_a_solution_that_only_imports_triton_keeps_the_time_budget():
    pytest.importorskip("triton")
    d = world_readable()
    res = run(FIXTURES / "kb" / "relu_task.py", write(d, "solution.py", GHOST_TRITON_SLEEPER), call_timeout_s=10)
    assert res["verdict"] == "timeout", res
    assert res["checks"]["eval_s"] < 60, res
