"""Hostile bytes on the candidate's pipes end in a verdict, never a crash or hang of kopt (issue 16).

Before: a deeply nested alarm line or reply header made kopt's json.loads raise RecursionError
(a traceback, no verdict), and a candidate that stopped reading its request pipe left kopt
blocked for ever writing a request larger than the pipe's buffer. Now the first two are
`rejected` and the third is `timeout`, each within the call's deadline.
"""
from __future__ import annotations

import re
import shutil
import threading
import time

import pytest

from tests.redteam._kb import FIXTURES, run, world_readable, write

pytest.importorskip("torch")

RELU = FIXTURES / "tasks" / "relu.py"

WRITES_IN_INIT = '''
import os, struct, sys
import torch
import torch.nn as nn

def fd(name):
    return int(sys.argv[sys.argv.index(name) + 1])

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        os.write(fd("__FD__"), __BYTES__)

    def forward(self, x):
        return torch.relu(x)
'''

NESTED = {
    # name: (pipe, bytes written there during setup, words the reason must hold)
    "alarm line nested 6000 deep": ("--fd-alarm", 'b"[" * 6000 + b"\\n"', "wrote to the alarm channel"),
    "reply header nested 200k deep": ("--fd-out", 'struct.pack("<II", 400000, 0) + b"[" * 200000 + b"]" * 200000',
                                      "nested too deeply"),
}


@pytest.mark.parametrize("attack", sorted(NESTED))
def test_deeply_nested_json_from_the_candidate_is_rejected_not_a_crash(tmp_path, attack):
    pipe, data, words = NESTED[attack]
    sol = write(tmp_path, "nested.py", WRITES_IN_INIT.replace("__FD__", pipe).replace("__BYTES__", data))
    res = run(RELU, sol, call_timeout_s=10)
    assert res["verdict"] == "rejected" and words in res["reason"], (res["verdict"], res.get("reason"))


BIG_RELU = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)

def get_inputs():
    return [torch.randn(1 << 20)]  # 4 MiB: more than a pipe's buffer (1 MiB at most by default)

def get_init_inputs():
    return []
'''

STOPS_READING = '''
import os, sys
import torch
import torch.nn as nn

_keep = []

class ModelNew(nn.Module):
    """Its worker never reads another request: the request pipe is swapped for an empty one."""
    def __init__(self):
        super().__init__()
        r, w = os.pipe()
        _keep.append(w)
        os.dup2(r, int(sys.argv[sys.argv.index("--fd-in") + 1]))

    def forward(self, x):
        return torch.relu(x)
'''


@pytest.fixture
def shared_dir():
    d = world_readable()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_candidate_that_stops_reading_requests_times_out_instead_of_blocking_kopt(tmp_path, shared_dir):
    task = write(shared_dir, "big_relu.py", BIG_RELU)
    task.chmod(0o644)
    sol = write(tmp_path, "stops_reading.py", STOPS_READING)
    box: dict = {}
    t0 = time.monotonic()
    worker = threading.Thread(target=lambda: box.update(res=run(task, sol, call_timeout_s=5)), daemon=True)
    worker.start()
    worker.join(120)  # before the fix kopt stayed in os.write for ever
    assert not worker.is_alive(), "kopt blocked writing a request the candidate never reads"
    res = box["res"]
    # the request (its payload in shared memory, or the pipe full of it) is never answered
    assert res["verdict"] == "timeout" and re.search(r"did not (take|answer) '(put|call)'", res["reason"]), \
        res.get("reason")
    assert time.monotonic() - t0 < 90
