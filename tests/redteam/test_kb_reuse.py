"""Reference reuse is caught by what the code is, not by its name (issue 16, item 6).

A readable copy of the task file, loaded under another name and subclassed, held or
exec'd, passed as `same` before (the static scan only knew the base-class name `Model`).
A copy of the reference's *source text* written into the solution stays an honest copy.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import FIXTURES, as_solution, run, write

pytest.importorskip("torch")

RELU = FIXTURES / "tasks" / "relu.py"

LOAD_COPY = '''
import importlib.util
import os
import torch.nn as nn

COPY = os.path.join(os.getcwd(), "helpers_elsewhere.py")  # the task's text, written where the worker may
with open(COPY, "w") as f:
    f.write(bytes.fromhex("__HEX__").decode())
spec = importlib.util.spec_from_file_location("helpers_elsewhere", COPY)
helpers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(helpers)
Base = getattr(helpers, "Mo" + "del")
'''

ATTACKS = {
    "subclasses a copy loaded under another name": LOAD_COPY + '''
class ModelNew(Base):
    pass
''',
    "holds a copy's Model and delegates to it": LOAD_COPY + '''
class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Base()

    def forward(self, x):
        return self.inner(x)
''',
    "exec's the task's text and subclasses the result": '''
import torch.nn as nn

ns = {}
exec(bytes.fromhex("__HEX__").decode(), ns)

class ModelNew(ns["Mo" + "del"]):
    pass
''',
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_reusing_the_task_model_is_rejected(tmp_path, attack):
    # the jail shows no host folder with a copy of the task: the solution carries the text
    sol = write(tmp_path, "reuse.py", ATTACKS[attack].replace("__HEX__", RELU.read_text().encode().hex()))
    res = run(RELU, sol)
    assert res["verdict"] == "rejected" and "task's own Model" in res["reason"], (res["verdict"], res.get("reason"))


def test_the_reference_source_pasted_into_the_solution_stays_an_honest_copy(tmp_path):
    pasted = RELU.read_text() + "\n\nclass ModelNew(Model):\n    pass\n"
    pasted = pasted.replace("class ModelNew(Model)", "class ModelNew(Reference)").replace(
        "class Model(", "class Reference(")
    for sol in (as_solution(RELU.read_text()), pasted):
        res = run(RELU, write(tmp_path, "honest.py", sol))
        assert res["correct"] is True and res["verdict"] != "rejected", (res["verdict"], res.get("reason"))
