"""Red team round 4: the inputs-untouched check compared the candidate's inputs, call by call,
with `zip` -- so a call whose input list came back *empty* compared nothing. A solution that
modified its input in place (`x.relu_()`, saving the output's allocation) reached the harness's
own input lists through the stack and emptied them after each forward: kopt judged it correct
and 'faster' (2.7x on a 256x4096 rectifier). Every call must now return as many inputs as the
reference's."""
from __future__ import annotations

import pytest

from tests.redteam._kb import FIXTURES, run, write

torch = pytest.importorskip("torch")

RELU = FIXTURES / "tasks" / "relu.py"

IN_PLACE_AND_EMPTIED = '''
import sys
import torch.nn as nn

_seen = {"inputs": None, "outs": [], "k": 0}


def _worker():
    f = sys._getframe(1)
    while f is not None:
        w = f.f_locals.get("self")
        if type(w).__name__ == "Worker":
            return w
        f = f.f_back


class ModelNew(nn.Module):
    def forward(self, *args):
        if not args:  # the repeat pass over emptied lists: the next call's outputs, kept
            _seen["k"] += 1
            return _seen["outs"][_seen["k"] % len(_seen["outs"])]
        w = _worker()
        if w.inputs is not _seen["inputs"]:
            _seen.update(inputs=w.inputs, outs=[], k=0)
        y = args[0].relu_()  # in place: the input is destroyed
        _seen["outs"].append(y)
        for slot in w.inputs:
            if slot and slot[0] is args[0]:
                slot.clear()  # ... and the harness's record of it emptied
        return y
'''


def test_an_emptied_input_list_is_not_an_untouched_one():
    from kopt.sandboxes.checks import Tolerance, check_round

    x = torch.randn(4, 8)
    out = torch.relu(x)
    rc = check_round([out], [[x]], {"outs": [out], "inputs_after": [[]], "repeat": [out]}, Tolerance(), "trial")
    assert rc.verdict == "incorrect", rc
    assert "input" in rc.reason


def test_in_place_solution_that_empties_the_harness_inputs_is_incorrect(tmp_path):
    res = run(RELU, write(tmp_path, "emptied.py", IN_PLACE_AND_EMPTIED), trials=2, rounds=3, max_timing_s=2)
    assert res["verdict"] == "incorrect", (res["verdict"], res.get("reason"), res.get("speedup"))
    assert "input" in res["reason"], res["reason"]
