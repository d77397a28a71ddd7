"""Reference reuse loaded lazily, by a forward, is caught too (issue 16, item 6; a gap left
after the first round: code fingerprints were taken only at setup). The solution execs the
task's text on its first call and delegates to that `Model` from then on."""
from __future__ import annotations

import pytest

from tests.redteam._kb import FIXTURES, run, write

pytest.importorskip("torch")

RELU = FIXTURES / "tasks" / "relu.py"

LOADS_ON_FIRST_CALL = '''
import torch
import torch.nn as nn

_inner = []


class ModelNew(nn.Module):
    def forward(self, x):
        if not _inner:
            ns = {}
            exec(bytes.fromhex("__HEX__").decode(), ns)
            _inner.append(ns["Mo" + "del"]())
        return _inner[0](x)
'''


def test_the_task_model_loaded_by_a_forward_is_rejected(tmp_path):
    sol = write(tmp_path, "lazy_reuse.py", LOADS_ON_FIRST_CALL.replace("__HEX__", RELU.read_text().encode().hex()))
    res = run(RELU, sol)
    assert res["verdict"] == "rejected" and "task's own Model" in res["reason"], (res["verdict"], res.get("reason"))
