"""A solution that swaps a harness function's code, keeping the function object, is caught
(issue 16, red-team round 1). The tamper check compared identities only: replacing
`Worker.cmd_inputs_after.__code__` made kopt see the inputs as sent, not as forward left
them, and an in-place `relu_` passed. The plain in-place solution is the control."""
from __future__ import annotations

import pytest

from tests.redteam._kb import FIXTURES, run, write

pytest.importorskip("torch")

RELU = FIXTURES / "tasks" / "relu.py"
FAST = {"max_timing_s": 2, "rounds": 5, "trials": 2}

IN_PLACE = '''
import sys
import torch.nn as nn

def _inputs_as_sent(self, h, payload):
    from kopt.sandboxes import protocol
    return self._encoded([list(s) for s in protocol.decode(self.payload, self.torch)])

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        SWAP

    def forward(self, x):
        return x.relu_()
'''

SWAPS = {
    "code": "sys.modules['__main__'].Worker.cmd_inputs_after.__code__ = _inputs_as_sent.__code__",
    "code, check skipped through an instance attribute": (
        "[setattr(o, 'check_tamper', lambda: None) for o in __import__('gc').get_objects() "
        "if type(o).__name__ == 'Worker']; "
        "sys.modules['__main__'].Worker.cmd_inputs_after.__code__ = _inputs_as_sent.__code__"),
}


def test_in_place_without_tampering_is_incorrect(tmp_path):
    res = run(RELU, write(tmp_path, "sol.py", IN_PLACE.replace("SWAP", "pass")), **FAST)
    assert res["verdict"] == "incorrect" and "in place" in res["reason"], (res["verdict"], res.get("reason"))


@pytest.mark.parametrize("swap", sorted(SWAPS))
def test_swapping_harness_code_is_caught(tmp_path, swap):
    res = run(RELU, write(tmp_path, "sol.py", IN_PLACE.replace("SWAP", SWAPS[swap])), **FAST)
    assert res["verdict"] in ("rejected", "incorrect") and res.get("correct") is not True, \
        (res["verdict"], res.get("reason"))


SWITCHES_RULES_OFF = '''
import gc
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        for o in gc.get_objects():
            if type(o).__name__ == "Alarm":
                o.enforce = False  # the reference's hook enforces nothing: try to be treated like it

    def forward(self, x):
        return x.relu()
'''


def test_switching_the_audit_rules_off_is_caught(tmp_path):
    res = run(RELU, write(tmp_path, "rules_off.py", SWITCHES_RULES_OFF), **FAST)
    assert res["verdict"] == "rejected" and "switched off" in res["reason"], (res["verdict"], res.get("reason"))
