"""Red team round 5: the alarm channel silenced from inside. The harness writes every alarm
(tamper check, network, the task file) to one fd; a solution that dup'ed it (so the pipe stays
open and kopt never sees it close) and then `dup2`'d /dev/null onto it lost all of them: with
`time.perf_counter` patched it was judged `same` (without the dup2: `rejected`). kopt now
checks from /proc, at every police point, that the fd is still its pipe.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import FIXTURES, run, world_readable, write

pytest.importorskip("torch")

SILENCED = '''
import os
import sys
import time
import torch
import torch.nn as nn

_fd = int(sys.argv[sys.argv.index("--fd-alarm") + 1])
_kept = os.dup(_fd)
os.dup2(os.open("/dev/null", os.O_WRONLY), _fd)
time.perf_counter = lambda: 0.0


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.relu(x)
'''


def test_an_alarm_channel_pointed_at_dev_null_is_rejected():
    d = world_readable()
    res = run(FIXTURES / "kb" / "relu_task.py", write(d, "solution.py", SILENCED))
    assert res["verdict"] == "rejected", res
    assert "alarm" in res["reason"] or "patches the timer" in res["reason"], res
