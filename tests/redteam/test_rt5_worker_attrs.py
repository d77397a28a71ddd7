"""Red team round 5: the worker's own attributes were writable from forward (it reaches the
Worker through `cmd_call`'s frame). Resetting `code_before` to a fresh `live_code()` after
loading the task's Model lazily, into a closure, hid that code from the second reuse scan
(judged like an honest solution); a `gpu_timer` or `payload` of the candidate's would be read
by the worker on later requests. From setup on, any attribute of the worker (or of its GPU
timer) the worker did not write itself is tampering.
"""
from __future__ import annotations

import shutil

import pytest

from kopt.sandboxes.harness_watch import own_state, own_state_change
from tests.redteam._kb import FIXTURES, run, world_readable, write

pytest.importorskip("torch")

COPY = FIXTURES / "kb" / "relu_task.py"

LAZY_DELEGATE = f'''
import importlib.util
import sys
import torch.nn as nn
from kopt.sandboxes import reuse


def _lazy():
    held = []

    def run(*x):
        if not held:  # the task's Model, loaded only now, after the first reuse scan
            spec = importlib.util.spec_from_file_location("task_copy", {str(COPY)!r})
            task = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(task)
            held.append(task.Model())
            f = sys._getframe(0)
            while f is not None and f.f_code.co_name != "cmd_call":
                f = f.f_back
            if f is not None:
                {{rewrite}}
        return held[0](*x)
    return run


class ModelNew(nn.Module):
    def __init__(self, *args):
        super().__init__()
        self.run = _lazy()

    def forward(self, *x):
        return self.run(*x)
'''

# the attribute rewritten alone, by a forward that is otherwise right
PLAIN = '''
import sys
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        f = sys._getframe(0)
        while f is not None and f.f_code.co_name != "cmd_call":
            f = f.f_back
        if f is not None:
            {rewrite}
        return torch.relu(x)
'''

REWRITES = {
    "code_before": 'f.f_locals["self"].code_before = reuse.live_code()',
    "gpu_timer": 'f.f_locals["self"].gpu_timer = object()',
    "payload": 'f.f_locals["self"].payload = bytearray(f.f_locals["self"].payload)',  # same bytes, another object
}


@pytest.mark.parametrize("attr", sorted(REWRITES))
def test_a_worker_attribute_rewritten_in_forward_is_tampering(attr):
    d = world_readable()
    task = d / "task.py"  # the task evaluated is another copy: reading it is blocked, reading COPY is not
    shutil.copy(COPY, task)
    task.chmod(0o644)
    # code_before: the real attack (the lazy load alone is caught by the second reuse scan)
    template = LAZY_DELEGATE if attr == "code_before" else PLAIN
    res = run(task, write(d, "solution.py", template.replace("{rewrite}", REWRITES[attr])))
    assert res["verdict"] == "rejected", res
    assert "patches the timer or harness" in res["reason"] and attr in res["reason"], res


class _Box:
    pass


def test_own_state_takes_only_what_the_worker_wrote():
    w = _Box()
    w.inputs, w.payload, w.code_before = [], b"a", [1]
    state = own_state(w)
    assert own_state_change(w, state) is None
    w.inputs, w.payload = [[1]], b"b"  # what put writes
    state = own_state(w, state, ("inputs", "payload", "outs", "call_seed"))
    assert own_state_change(w, state) is None
    w.code_before = [2]
    assert own_state_change(w, own_state(w, state, ("outs",))) == "code_before"
    del w.code_before
    assert own_state_change(w, state) == "code_before"
    w.code_before, w.extra = [1], 0
    assert own_state_change(w, state) is not None
