"""Red team 7: outputs computed straight into the reply memfd, with no patch at all.

After the reply path's guard (e42ef5d) rejected the self-restoring `_write_shm` patch, the
same forward without it -- the worker's reply memfd mapped shared, every output written where
`encode` will place it, so the reply's pwritev copies each page onto itself -- still read
`faster` 1.46x (CI 1.14-1.88) on relu 16 x 16384 (and same 1.24x on a rerun), its CPU seconds
1.22-1.24x in both while an honest copy's were 1.00x: the relu is the same, the saving is the
harness's transport. The harness never maps that memfd, so a mapping of it in the worker
(kopt can read /proc/<pid>/maps) is the candidate's.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import relu_task, run, world_readable, write

MAPPED = '''
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
        return out
'''


def test_outputs_computed_into_the_mapped_reply_memfd_are_refused():
    pytest.importorskip("torch")
    d = world_readable()
    res = run(write(d, "task.py", relu_task(16, 16384)), write(d, "mapped.py", MAPPED), max_timing_s=6, rounds=8)
    assert res["verdict"] == "rejected", res
