"""Red team round 5: candidate code run by torch methods the harness calls between calls.

`put` decodes the inputs with `Tensor.numpy` (and `torch.empty`), places them with `Tensor.to`;
`inputs_after` encodes them with `Tensor.numpy`. None of `torch.Tensor`'s own dict was watched,
and the snapshot of the methods that were (`Tensor.to`...) read them with getattr, which a
descriptor put on the class answers with the original. So:
1. a `numpy` added to `torch.Tensor` made a matmul's answer while `put` filled the inputs (out
   of the clock; the CPU-outside allowance absorbed it): `faster` 3.0x;
2. the same hook, while `inputs_after` encoded the inputs, put back what an in-place
   `relu_()` had overwritten (from the harness's own copy of the payload): `faster` 1.5x;
3. a descriptor for `to` on `torch.Tensor` (the original on the class, a hook on a tensor):
   the same precomputation, unseen by the snapshot (1.9x).
A name added to (or replaced in) `torch.Tensor`, `torch.cuda.Event`, the GPU timer or the JSON
classes is now tampering, and `torch.empty` joined the snapshot.
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


N = 160


def get_inputs():
    return [torch.randn(N, N), torch.randn(N, N)]


def get_init_inputs():
    return []
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

_IN = '''
def _inside(name):
    f = sys._getframe(2)
    while f is not None and f.f_code.co_name != name:
        f = f.f_back
    return f
'''

_FORWARD = '''
class ModelNew(nn.Module):
    def forward(self, A, B):
        hit = _ready.pop(id(A), None)
        if hit is not None and hit[0] is A and hit[1] is B and A._version == B._version == 0:
            return hit[2]
        return torch.matmul(A, B)
'''

NUMPY_IN_PUT = '''
import sys
import numpy as np
import torch
import torch.nn as nn

_numpy, _ready, _pending = torch.Tensor.numpy, {}, []
''' + _IN + '''

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
''' + _FORWARD

RESTORE_IN_INPUTS_AFTER = '''
import sys
import torch
import torch.nn as nn
from kopt.sandboxes import protocol

_numpy = torch.Tensor.numpy
_busy = []
''' + _IN + '''

def _hook(self, *args, **kwargs):
    frame = None if _busy else _inside("cmd_inputs_after")
    if frame is not None:
        worker = frame.f_locals["self"]
        if getattr(worker, "_undone", None) is not worker.payload:
            _busy.append(1)
            try:  # undo the in-place relu_ from kopt's own bytes, before the inputs are read
                for slot, values in zip(worker.inputs, protocol.decode(worker.payload, torch)):
                    for x, v in zip(slot, values):
                        x.copy_(v)
            finally:
                _busy.clear()
            worker._undone = worker.payload
    return _numpy(self, *args, **kwargs)


torch.Tensor.numpy = _hook


class ModelNew(nn.Module):
    def forward(self, x):
        return x.relu_()
'''

DESCRIPTOR_TO = '''
import sys
import torch
import torch.nn as nn

_to, _ready, _pending = torch.Tensor.to, {}, []
''' + _IN + '''

def _hook(x, *args, **kwargs):
    y = _to(x, *args, **kwargs)
    if y.dim() == 2 and _inside("cmd_put") is not None:
        _pending.append(y)
        if len(_pending) == 2:
            a, b = _pending
            _pending.clear()
            _ready[id(a)] = (a, b, torch.matmul(a, b))
    return y


class _To:
    def __get__(self, obj, owner=None):  # the class gets the original: what a getattr snapshot sees
        return _to if obj is None else (lambda *a, **k: _hook(obj, *a, **k))


torch.Tensor.to = _To()
''' + _FORWARD


@pytest.mark.parametrize("task, solution", [(MATMUL, NUMPY_IN_PUT), (RELU, RESTORE_IN_INPUTS_AFTER),
                                            (MATMUL, DESCRIPTOR_TO)],
                         ids=["numpy-in-put", "restore-in-inputs-after", "descriptor-to"])
def test_a_torch_tensor_method_added_by_the_candidate_is_tampering(task, solution):
    d = world_readable()
    res = run(write(d, "task.py", task), write(d, "solution.py", solution))
    assert res["verdict"] == "rejected", res
    assert "patches the timer or harness" in res["reason"], res
