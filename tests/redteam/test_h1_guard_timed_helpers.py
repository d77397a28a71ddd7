"""Red team 7: `sealed_inputs` (which maps a timed call's inputs) and `harness_support` (whose
`Seeded` wraps every forward) were outside the worker's guard: a solution replaced
`sealed_inputs.map_inputs` for every call at import and was judged `same`, not `rejected`.
Both modules are now guarded like `protocol`."""
from __future__ import annotations

import pytest

from tests.redteam._kb import relu_task, run, world_readable, write

PATCHES = '''
import torch
import torch.nn as nn
from kopt.sandboxes import MODULE

_original = MODULE.NAME


def _mine(*args, **kwargs):
    return _original(*args, **kwargs)


MODULE.NAME = _mine


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.relu(x)
'''


@pytest.mark.parametrize("module,name", [("sealed_inputs", "map_inputs"), ("harness_support", "Seeded")])
def test_a_replaced_helper_of_the_timed_path_is_tampering(module, name):
    pytest.importorskip("torch")
    d = world_readable()
    task = write(d, "task.py", relu_task(64, 64))
    res = run(task, write(d, "solution.py", PATCHES.replace("MODULE", module).replace("NAME", name)))
    assert res["verdict"] == "rejected" and "patches the timer or harness" in res["reason"], res
