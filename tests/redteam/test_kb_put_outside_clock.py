"""Inputs are put in place before the clock starts (issue 16, item 7): work a candidate
does while its inputs are delivered is outside the timed call. A solution that computes
its answer there (from a patched json.dumps, run as the `put` is answered) is caught by
the CPU it spends outside the timed calls, against the reference's: never `faster`."""
from __future__ import annotations

import pytest

from tests.redteam._kb import FIXTURES, run, write

pytest.importorskip("torch")

DOUBLE_MATMUL = FIXTURES / "tasks" / "double_matmul.py"

WORKS_WHILE_INPUTS_ARRIVE = '''
import gc
import json
import torch
import torch.nn as nn

_dumps = json.dumps
_ready = {}


def _dumps_after_work(obj, *args, **kwargs):
    if obj == {"ok": True}:  # the reply to `put`: the inputs are in place now
        for o in gc.get_objects():
            if type(o).__name__ == "Worker" and getattr(o, "inputs", None):
                for a, b in o.inputs:
                    _ready[(a.data_ptr(), b.data_ptr())] = torch.matmul(a, b)
                break
    return _dumps(obj, *args, **kwargs)


json.dumps = _dumps_after_work


class ModelNew(nn.Module):
    def forward(self, a, b):
        out = _ready.pop((a.data_ptr(), b.data_ptr()), None)
        return out if out is not None else torch.matmul(a, b)
'''


def test_work_done_while_inputs_are_put_in_place_is_never_faster(tmp_path):
    res = run(DOUBLE_MATMUL, write(tmp_path, "works_early.py", WORKS_WHILE_INPUTS_ARRIVE), rounds=7,
              max_timing_s=6)
    assert res["verdict"] in ("rejected", "same", "slower"), (res["verdict"], res.get("reason"), res["speedup"])
    if res["verdict"] == "rejected":
        assert "outside the timed calls" in res["reason"] or "patches" in res["reason"], res["reason"]
