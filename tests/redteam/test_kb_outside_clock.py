"""No work outside the clock (issue 16, item 3).

Before, the timed interval ended when `forward` returned; the outputs were serialised by
a later, untimed request. A solution that returns an empty tensor and fills it while its
outputs are being serialised was `correct`, `faster`. Now each side's clock runs from the
request that carries the inputs to the last byte of its outputs: the deferred work is
timed (here three times the reference's work: never `faster`), or the patch is caught.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import FIXTURES, run, write

pytest.importorskip("torch")

DOUBLE_MATMUL = FIXTURES / "tasks" / "double_matmul.py"

FILLS_WHILE_SERIALISED = FIXTURES / "solutions" / "fills_while_serialised.py"

LAZY_OBJECT = '''
import torch
import torch.nn as nn


class Lazy:
    """Not a tensor at all: computes when asked for its bytes."""
    def __init__(self, a, b):
        self.a, self.b = a, b

    def __reduce_ex__(self, protocol):
        return (torch.matmul, (self.a, self.b))


class ModelNew(nn.Module):
    def forward(self, a, b):
        return Lazy(a, b)
'''


def test_work_done_while_outputs_are_serialised_is_timed(tmp_path):
    res = run(DOUBLE_MATMUL, FILLS_WHILE_SERIALISED, rounds=5, max_timing_s=4)
    assert res["verdict"] in ("same", "slower", "rejected"), (res["verdict"], res.get("reason"), res["speedup"])
    if res["verdict"] != "rejected":
        assert res["correct"] is True and res["speedup"] < 1.1, res


def test_a_lazily_computed_output_object_is_rejected(tmp_path):
    res = run(DOUBLE_MATMUL, write(tmp_path, "lazy.py", LAZY_OBJECT))
    assert res["verdict"] == "rejected" and "not a plain torch.Tensor" in res["reason"], res.get("reason")
