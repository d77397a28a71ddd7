"""Red team 7: outputs written straight into the reply memfd, the copy skipped by a patch that
undoes itself.

The candidate's forward found the worker on the stack, mapped its reply memfd (`shm`) shared
and computed each output into the place `protocol.encode` would put it; on the round's last
forward it replaced `protocol._write_shm` with a function that put the original back and
wrote the blob's head only. The outputs' copy (and their fresh pages) never happened, and
by the next request every guarded name was the original again. kopt subtracts the
reference's cost of sending a round's outputs from both sides, so the candidate gained it
twice: relu on 16 x 16384, `faster` 2.49x (CI 2.19-3.53), CPU seconds 1.47x; an honest copy
read 0.92x.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import relu_task, run, world_readable, write

DIRECT = '''
import mmap
import os
import sys

import torch
import torch.nn as nn

_state = {}


def _worker():
    f = sys._getframe(1)
    while f is not None:
        w = f.f_locals.get("self")
        if w is not None and hasattr(w, "shm") and hasattr(w, "inputs") and hasattr(w, "fd_pass"):
            return w
        f = f.f_back
    return None


class ModelNew(nn.Module):
    def forward(self, x):
        w = _worker()
        n = len(w.inputs) if w is not None and w.shm is not None else 0
        i = next((k for k in range(n) if w.inputs[k] and w.inputs[k][0] is x), None)
        if i is None:
            return torch.relu(x)
        proto = sys.modules["kopt.sandboxes.protocol"]
        if _state.get("key") != (tuple(x.shape), n):
            head = proto.encode([torch.empty(x.shape) for _ in range(n)], torch)[0]
            size = x.numel() * 4
            step = size + (-size % proto.ALIGN)
            total = len(head) + n * step
            if os.fstat(w.shm).st_size < total:
                os.ftruncate(w.shm, total)
            _state.update(key=(tuple(x.shape), n), head=len(head), step=step, size=size,
                          mm=mmap.mmap(w.shm, total, flags=mmap.MAP_SHARED))
        s = _state
        out = torch.frombuffer(s["mm"], dtype=torch.float32, count=s["size"] // 4,
                               offset=s["head"] + i * s["step"]).view(x.shape)
        torch.clamp_min(x, 0.0, out=out)
        if i == n - 1:
            original = proto._write_shm

            def once(shm, parts):
                proto._write_shm = original
                os.pwrite(shm, bytes(memoryview(parts[0]).cast("B")), 0)

            proto._write_shm = once
        return out
'''


def test_outputs_written_into_the_reply_memfd_are_not_faster():
    pytest.importorskip("torch")
    d = world_readable()
    res = run(write(d, "task.py", relu_task(16, 16384)), write(d, "direct.py", DIRECT), max_timing_s=6, rounds=8)
    assert res["verdict"] != "faster", res
