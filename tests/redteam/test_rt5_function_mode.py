"""Red team round 5: a TorchFunctionMode left on torch's mode stack sees every torch call in
the candidate's process, the harness's too: in `put`, `Tensor.to` handed it each input once
decoded, and it made the matmul's answer there, out of the clock (192x192: faster 2.0x; the
CPU-outside allowance covered it). A mode (function or dispatch) left on is now tampering.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import run, world_readable, write
from tests.redteam.test_rt5_tensor_hooks import MATMUL

pytest.importorskip("torch")

MODE_IN_PUT = '''
import sys
import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

_ready, _pending = {}, []


def _in_put():
    f = sys._getframe(2)
    while f is not None and f.f_code.co_name != "cmd_put":
        f = f.f_back
    return f is not None


class _Mode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.Tensor.to and isinstance(out, torch.Tensor) and out.dim() == 2 and _in_put():
            _pending.append(out)
            if len(_pending) == 2:
                a, b = _pending
                _pending.clear()
                with torch._C.DisableTorchFunction():
                    _ready[id(a)] = (a, b, torch.matmul(a, b))
        return out


_Mode().__enter__()


class ModelNew(nn.Module):
    def forward(self, A, B):
        hit = _ready.pop(id(A), None)
        if hit is not None and hit[0] is A and hit[1] is B:
            return hit[2]
        with torch._C.DisableTorchFunction():
            return torch.matmul(A, B)
'''


def test_a_torch_function_mode_left_on_is_tampering():
    d = world_readable()
    res = run(write(d, "task.py", MATMUL), write(d, "solution.py", MODE_IN_PUT))
    assert res["verdict"] == "rejected", res
    assert "patches the timer or harness" in res["reason"], res
