"""Red team round 5: the worker's input lists swapped from inside forward. `inputs_after`
encodes `self.inputs`, an attribute of the Worker object that forward reaches through the
stack (`cmd_call`'s frame). A list subclass put there ran the candidate's code when it was
iterated: it undid an in-place `relu_` from the worker's own copy of the payload before the
inputs were read, so writing into the inputs (no fresh output pages per call) went unseen:
faster 2.3x. The input lists must now be the plain lists `put` made.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import run, world_readable, write
from tests.redteam.test_rt5_tensor_hooks import RELU

pytest.importorskip("torch")

SWAPPED_INPUTS = '''
import sys
import torch
import torch.nn as nn
from kopt.sandboxes import protocol


class _Inputs(list):
    def __iter__(self):
        w = self.worker
        if getattr(w, "_undone", None) is not w.payload:
            w._undone = w.payload
            for slot, values in zip(list.__iter__(self), protocol.decode(w.payload, torch)):
                for x, v in zip(slot, values):
                    x.copy_(v)
        return list.__iter__(self)


class ModelNew(nn.Module):
    def forward(self, x):
        f = sys._getframe(1)
        while f is not None and f.f_code.co_name not in ("cmd_call", "cmd_repeat"):
            f = f.f_back
        if f is not None and f.f_code.co_name == "cmd_call" and type(f.f_locals["self"].inputs) is list:
            w = f.f_locals["self"]
            w.inputs = _Inputs(w.inputs)
            w.inputs.worker = w
        return x.relu_()
'''


def test_an_input_list_swapped_during_forward_is_tampering():
    d = world_readable()
    res = run(write(d, "task.py", RELU), write(d, "solution.py", SWAPPED_INPUTS))
    assert res["verdict"] == "rejected", res
    assert "patches the timer or harness" in res["reason"], res
