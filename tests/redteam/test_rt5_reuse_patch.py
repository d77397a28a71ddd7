"""Red team round 5: the reuse scan runs in the candidate's process, through functions of
`kopt.sandboxes.reuse` (and `gc`, `hashlib`) that nothing watched. A solution that replaced
`reuse.model_fingerprints` and `reuse.new_code_fingerprints` with `lambda *a: []`, then
delegated to the task's own Model loaded from a readable copy (here the fixture inside kopt's
tree, which every worker sees), was judged `same` instead of `rejected`. Those modules are now
guarded like the harness's own globals.
"""
from __future__ import annotations

import shutil

import pytest

from tests.redteam._kb import FIXTURES, run, world_readable, write

pytest.importorskip("torch")

COPY = FIXTURES / "kb" / "relu_task.py"

DELEGATE = f'''
import importlib.util
import torch.nn as nn
from kopt.sandboxes import reuse

{{patch}}
_spec = importlib.util.spec_from_file_location("task_copy", {str(COPY)!r})
_task = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_task)


class ModelNew(nn.Module):
    def __init__(self, *args):
        super().__init__()
        self.inner = _task.Model(*args)

    def forward(self, *x):
        return self.inner(*x)
'''


@pytest.mark.parametrize("patch", ["", "reuse.model_fingerprints = reuse.new_code_fingerprints = lambda *a: []"],
                         ids=["plain", "scan-patched"])
def test_delegating_to_a_readable_copy_of_the_task_is_rejected_even_with_the_scan_patched(patch):
    d = world_readable()
    task = d / "task.py"  # the task evaluated is another copy: reading it is blocked, reading COPY is not
    shutil.copy(COPY, task)
    task.chmod(0o644)
    res = run(task, write(d, "solution.py", DELEGATE.replace("{patch}", patch)))
    assert res["verdict"] == "rejected", res
    assert "reusing the reference" in res["reason"] or "patches the timer or harness" in res["reason"], res
