"""Red team 6: no verdict may rest on state kept in the candidate's own process.

The worker's tamper checks compared the harness with snapshots held in the serve loop's
locals (`guard`, `names`, `own`, `originals`). A trace function set on that frame
(`frame.f_trace` + `sys.settrace`, both cleared at once) writes the frame's `f_locals` back
in Python 3.11: the solution emptied `guard` and `names`, then a `numpy` put on
`torch.Tensor` (the round-5 hook) made a matmul's answer while `put` decoded the inputs,
out of the clock: `faster` 2-3x, no alarm. Now the inputs are not in the candidate's process
until the timed `call` hands it a sealed memfd: there is nothing to precompute in `put`, and
the verdict no longer depends on the forged check. The same forgery let an in-place `relu_`
be undone before `inputs_after` read the inputs (faster 1.56x): mapped private from the sealed
memfd, an input written in place costs a copy-on-write page, and nothing is gained.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import run, world_readable, write

pytest.importorskip("torch")

MATMUL = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, A, B):
        return torch.matmul(A, B)


N = 192


def get_inputs():
    return [torch.randn(N, N), torch.randn(N, N)]


def get_init_inputs():
    return []
'''

# empties the serve loop's snapshots through a trace function on its frame, then clears it
FORGE = '''
import sys


def _forge():
    f = sys._getframe(1)
    while f is not None and f.f_code.co_name != "serve":
        f = f.f_back
    if f is None:
        return

    def tracer(frame, event, arg):
        if frame is f:
            frame.f_locals["guard"] = ()
            frame.f_locals["names"] = ()
            frame.f_trace = None
            sys.settrace(None)
        return None

    f.f_trace = tracer
    sys.settrace(lambda *a: None)


_forge()
'''

PRECOMPUTE_IN_PUT = FORGE + '''
import numpy as np
import torch
import torch.nn as nn

_numpy, _ready, _pending = torch.Tensor.numpy, {}, []


def _inside(name):
    f = sys._getframe(2)
    while f is not None and f.f_code.co_name != name:
        f = f.f_back
    return f


class _Filled(np.ndarray):
    def __setitem__(self, k, v):
        np.ndarray.__setitem__(self.view(np.ndarray), k, v)
        _pending.append(self.tensor)
        if len(_pending) == 2:  # A and B of one call are in place: the answer, out of the clock
            a, b = _pending
            _pending.clear()
            _ready[id(a)] = (a, b, torch.matmul(a, b))


def _hook(self, *args, **kwargs):
    arr = _numpy(self, *args, **kwargs)
    build = sys._getframe(1)
    x = build.f_locals.get("x") if build.f_code.co_name == "build" else None
    if isinstance(x, torch.Tensor) and _inside("cmd_put") is not None:
        arr = arr.view(_Filled)
        arr.tensor = x
    return arr


torch.Tensor.numpy = _hook


class ModelNew(nn.Module):
    def forward(self, A, B):
        hit = _ready.pop(id(A), None)
        if hit is not None and hit[0] is A and hit[1] is B and A._version == B._version == 0:
            return hit[2]
        return torch.matmul(A, B)
'''


RELU = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)


batch_size = 64
dim = 4096


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
'''

# relu_ on the input itself, undone (out of the clock) before `inputs_after` reads the inputs:
# from the worker's payload (inputs put as data), or by dropping the mapping's copy-on-write
# pages (inputs mapped from kopt's memfd): either way the harness's check sees them untouched
UNDO_IN_PLACE = FORGE + '''
import mmap
import torch
import torch.nn as nn
from kopt.sandboxes import protocol

_numpy, _busy, _undone = torch.Tensor.numpy, [], []


def _inside(name):
    f = sys._getframe(2)
    while f is not None and f.f_code.co_name != name:
        f = f.f_back
    return f


def _hook(self, *args, **kwargs):
    frame = None if _busy else _inside("cmd_inputs_after")
    if frame is not None:
        worker = frame.f_locals["self"]
        _busy.append(1)
        try:
            mapped = getattr(worker, "mapped", None)
            if mapped is not None:
                mapped.madvise(mmap.MADV_DONTNEED)  # the file's own bytes come back
            elif _undone[-1:] != [id(worker.payload)]:
                for slot, values in zip(worker.inputs, protocol.decode(worker.payload, torch)):
                    for x, v in zip(slot, values):
                        x.copy_(v)
                _undone[:] = [id(worker.payload)]
        finally:
            _busy.clear()
    return _numpy(self, *args, **kwargs)


torch.Tensor.numpy = _hook


class ModelNew(nn.Module):
    def forward(self, x):
        return x.relu_()
'''


@pytest.mark.parametrize("task, solution", [(MATMUL, PRECOMPUTE_IN_PUT), (RELU, UNDO_IN_PLACE)],
                         ids=["precompute-in-put", "undo-in-place"])
def test_forged_serve_loop_snapshots_do_not_buy_time(task, solution):
    d = world_readable()
    res = run(write(d, "task.py", task), write(d, "solution.py", solution))
    # the answer is right either way; what may not happen is a speedup bought outside the clock
    assert res["verdict"] in ("same", "slower", "rejected"), res
    if res["verdict"] == "same":
        assert res["speedup"] < 1.5, res
