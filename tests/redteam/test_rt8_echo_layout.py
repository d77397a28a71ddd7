"""The transfer cost kopt subtracts from both sides is the reference's `echo` of its last
outputs. A reference returning a view (`relu(x).t()`) made its layout copy part of that
figure, so a candidate that paid the copy inside `forward` and returned contiguous outputs
had it subtracted without ever paying it in serialisation: a forward 3.6x slower read
`faster` 1.50x (CI 1.23-1.61). The echo now serialises contiguous outputs (HG's finding
after round 7)."""
from __future__ import annotations

from tests.redteam._kb import run, write

TASK = """import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x).t()


def get_inputs():
    return [torch.randn(1024, 4096)]


def get_init_inputs():
    return []
"""

SLOWER = """import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        y = x.t().contiguous()  # the layout copy, paid here: a forward about 3.6x the reference's
        return torch.relu_(y)
"""


def test_the_transfer_cost_subtracted_is_the_bytes_not_the_reference_layout_copy(tmp_path):
    """The contract times both sides until their outputs are in kopt's hands, serialised:
    a reference returning a view pays its layout copy there, and so does any candidate
    returning one; only moving the bytes (the same for both) is subtracted. Before the fix
    the subtracted figure held the reference's layout copy (about 3x its forward here), so a
    candidate paying that copy in `forward` had it taken off for free. Measured at the fix:
    20-25 ms a call moved, reference 39 ms with its layout copy (was about 10 without it)."""
    task, sol = write(tmp_path, "task.py", TASK), write(tmp_path, "sol.py", SLOWER)
    res = run(task, sol, max_timing_s=4, rounds=6)
    checks = res["checks"]
    assert res["correct"] is True, res
    per_call = checks["roundtrip_ms"] / checks["calls_per_round"]
    # moving 16 MB costs about the forward here (20 ms a call under load against 10-40): the
    # old figure, the layout copy on top, was ~5x the reference's forward-only time
    assert per_call < 1.5 * res["ref_ms"], res


def test_an_honest_copy_of_a_view_returning_task_reads_same(tmp_path):
    copy = TASK.replace("class Model(", "class ModelNew(").split("def get_inputs")[0]
    res = run(write(tmp_path, "task.py", TASK), write(tmp_path, "copy.py", copy), max_timing_s=4, rounds=6)
    assert res["correct"] is True and res["verdict"] == "same", res
