"""A process the solution forks outside forward is caught even when it hides: its main thread
exits (SYS_exit, so /proc/<pid>/stat says Z) while a second thread keeps running. Such a
process is alive, and its CPU counts against the candidate (the cgroup's, not the root pid's)."""
from __future__ import annotations

import pytest

from tests.redteam._kb import run, write

TASK = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, a, b):
        return a @ b

def get_inputs():
    return [torch.randn(64, 64), torch.randn(64, 64)]

def get_init_inputs():
    return []
"""

HIDDEN = """
import ctypes, os, threading, time
import torch
import torch.nn as nn

_child = []

def _spawn_hidden():
    pid = os.fork()
    if pid == 0:
        threading.Thread(target=lambda: [time.sleep(3600) for _ in iter(int, 1)]).start()
        ctypes.CDLL(None).syscall(60, 0)   # SYS_exit: only the leader thread ends
    time.sleep(0.3)
    return pid

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        if not _child:
            _child.append(_spawn_hidden())

    def forward(self, a, b):
        if len(os.listdir(f"/proc/{_child[0]}/task")) < 2:
            raise RuntimeError("hidden process died")
        return a @ b
"""


def test_process_with_exited_main_thread_is_rejected(tmp_path):
    from kopt.sandboxes.jail_setup import namespace_prefix

    if not namespace_prefix():
        pytest.skip("no PID namespace here: background processes are not policed")
    res = run(write(tmp_path, "task.py", TASK), write(tmp_path, "sol.py", HIDDEN), max_timing_s=2, rounds=5,
              trials=2)
    assert res["verdict"] == "rejected", res
    assert "process" in res["reason"], res
