"""The task's Model held outside ModelNew's object graph is still reuse (issue 16, red-team
round 1): a solution that exec's a copy of the task's text (read from a readable copy, or
carried as data, as here: no file needed) and keeps its Model in a module-level list or a
closure passed, since reuse.py walked only ModelNew's object graph."""
from __future__ import annotations

import pytest

from tests.redteam._kb import FIXTURES, run, write

pytest.importorskip("torch")

RELU = FIXTURES / "tasks" / "relu.py"

LOAD = '''
import torch.nn as nn

_ns = {}
exec(compile(bytes.fromhex("__HEX__").decode(), "<elsewhere>", "exec"), _ns)
'''

ATTACKS = {
    "module-level list": LOAD + '''
_REF = []

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        _REF.append(_ns["Mo" + "del"]())

    def forward(self, x):
        return _REF[0](x)
''',
    "closure": LOAD + '''
def _make():
    ref = _ns.pop("Mo" + "del")()
    return lambda x: ref(x)

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.__dict__["fn"] = _make()

    def forward(self, x):
        return self.__dict__["fn"](x)
''',
    "subclass (the object graph, as before)": LOAD + '''
class ModelNew(_ns["Mo" + "del"]):
    pass
''',
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_task_model_held_outside_model_new_is_rejected(tmp_path, attack):
    sol = write(tmp_path, "sol.py", ATTACKS[attack].replace("__HEX__", RELU.read_bytes().hex()))
    res = run(RELU, sol, max_timing_s=2, rounds=5, trials=2)
    assert res["verdict"] == "rejected" and "task's own Model" in res["reason"], (res["verdict"], res.get("reason"))
