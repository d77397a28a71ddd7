"""Red team 6: the reuse scan's `code_before` (the code alive before the solution loaded) is a
set in the candidate's process, and the worker's own-attribute guard compares identity only.
A forward that loaded the task's `Model` from a readable copy (the bundled example tasks are
visible in the jail: kopt's own package) added that Model's code objects to the *same* set
through the stack, so the scan after the trials saw nothing new: delegating to the task's own
Model was judged `same`, correct, where without the edit it is `rejected`.

Fixed: kopt asks the worker for the live fingerprints before the solution loads and keeps them
in its own process (`eval_session._with_code`); the worker holds no "before" set to edit.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.redteam._kb import run, world_readable, write

BUNDLED = Path(__file__).resolve().parents[2] / "benchmarks" / "examples" / "relu_task.py"

DELEGATES = '''
import importlib.util
import sys
import types

import torch.nn as nn

_held = {}


def _task_model():
    if "m" not in _held:
        spec = importlib.util.spec_from_file_location("bundled", "BUNDLED")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _held["m"] = mod.Model(*mod.get_init_inputs())
        codes = {f.__code__ for f in vars(mod.Model).values() if isinstance(f, types.FunctionType)}
        f = sys._getframe(1)
        while f is not None and EDIT:
            w = f.f_locals.get("self")
            if type(w).__name__ == "Worker" and isinstance(getattr(w, "code_before", None), set):
                w.code_before.update(codes)
                break
            f = f.f_back
        if BLIND:  # the scans then find no function anywhere
            types.FunctionType = type(None)
    return _held["m"]


class ModelNew(nn.Module):
    def forward(self, x):
        return _task_model()(x)
'''


def _solution(d: Path, edit: bool, blind: bool = False) -> Path:
    text = DELEGATES.replace("BUNDLED", str(BUNDLED)).replace("EDIT", str(edit)).replace("BLIND", str(blind))
    return write(d, f"solution_{edit}_{blind}.py", text)


def test_task_model_hidden_from_the_reuse_scan_is_rejected():
    pytest.importorskip("torch")
    d = world_readable()
    task = write(d, "task.py", BUNDLED.read_text())
    plain = run(task, _solution(d, edit=False))
    assert plain["verdict"] == "rejected", plain  # the control: delegation alone is caught
    res = run(task, _solution(d, edit=True))
    assert res["verdict"] == "rejected", res


def test_blinding_the_scans_themselves_is_rejected():
    """The next thing to blind once no "before" set is left in the worker: `types.FunctionType`
    swapped, so both scans see no function. Caught as tampering (the harness's own tamper check
    lists its functions through the same name and finds them gone): a regression test."""
    pytest.importorskip("torch")
    d = world_readable()
    task = write(d, "task.py", BUNDLED.read_text())
    res = run(task, _solution(d, edit=False, blind=True))
    assert res["verdict"] == "rejected", res
