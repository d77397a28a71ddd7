"""Red team round 4: code run while the inputs are put in place, and the tamper check switched off.

1. `put` is answered by harness code that looks up builtins (`isinstance`) after the inputs
   are decoded. A solution that replaced `builtins.isinstance` computed its whole answer
   there, out of the clock, and forward returned it: on a cheap elementwise task the CPU it
   spent between calls stayed inside the allowance (input-making dominates) and kopt judged
   it 'faster' (6.8x on a 256x4096 rectifier). Builtins are now part of the tamper check.
2. The tamper check, and the alarm it raises, are themselves functions the candidate could
   replace (`Worker.check_tamper`, `Alarm.raise_alarm`, the harness's `_changed`): any one
   of them replaced turned every tamper alarm off (a patched `time.perf_counter` went
   unreported). The worker's request loop now guards them with references taken before any
   candidate code ran.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import run, world_readable, write

pytest.importorskip("torch")

TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2.0


batch_size = 256
dim = 4096


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
'''

PUT_HOOK = '''
import builtins
import sys
import torch
import torch.nn as nn

_isinstance = builtins.isinstance
_ready = {}


def _hook(obj, cls):
    r = _isinstance(obj, cls)
    if r and type(obj) is torch.Tensor and obj.dim() == 2 and sys._getframe(1).f_code.co_name == "<listcomp>":
        with torch.no_grad():
            _ready[id(obj)] = (obj, torch.relu(obj) * 2.0)  # the answer, while `put` runs
    return r


builtins.isinstance = _hook


class ModelNew(nn.Module):
    def forward(self, x):
        hit = _ready.pop(id(x), None)
        if len(_ready) > 64:
            _ready.clear()
        if hit is not None and hit[0] is x:
            return hit[1]
        return torch.relu(x) * 2.0
'''

CHECK_OFF = '''
import sys
import time
import torch
import torch.nn as nn

main = sys.modules["__main__"]
SWITCH_OFF
_clock = time.perf_counter
time.perf_counter = lambda: _clock() * 0.5  # what the tamper check exists to report


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2.0
'''

SWITCHES = {
    "check replaced": "main.Worker.check_tamper = lambda self: None",
    "check's code swapped": "main.Worker.check_tamper.__code__ = (lambda self: None).__code__",
    "alarm replaced": "main.Alarm.raise_alarm = lambda self, rule, detail: None",
    "comparison replaced": "main._changed = lambda before, after: False",
}


@pytest.fixture(scope="module")
def task():
    return write(world_readable(), "relu_scaled.py", TASK)


def test_answer_computed_while_inputs_are_put_is_never_faster(task, tmp_path):
    res = run(task, write(tmp_path, "put_hook.py", PUT_HOOK), trials=2, rounds=7, max_timing_s=6)
    assert res["verdict"] == "rejected", (res["verdict"], res.get("reason"), res.get("speedup"))
    assert "patches" in res["reason"], res["reason"]


@pytest.mark.parametrize("switch", SWITCHES, ids=list(SWITCHES))
def test_switching_the_tamper_check_off_is_caught(task, tmp_path, switch):
    res = run(task, write(tmp_path, "check_off.py", CHECK_OFF.replace("SWITCH_OFF", SWITCHES[switch])), trials=2)
    assert res["verdict"] == "rejected", (switch, res["verdict"], res.get("reason"))
    assert "patches" in res["reason"], res["reason"]
