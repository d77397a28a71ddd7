"""Red team round 5: `put` reads `self.torch` (decode, `isinstance(x, self.torch.Tensor)`), an
attribute of the Worker object the candidate can reach (the stack at import passes through
`cmd_setup`). A module object of its own there, with the real torch behind `__getattr__`, was
handed every decoded input while `put` ran: a matmul made there, out of the clock, was judged
faster 1.9x. The worker now puts its own torch back before every request but the timed one.

The solution below raises in forward if its module was ever consulted while inputs were put
in place, so the verdict says whether candidate code ran there.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import run, world_readable, write
from tests.redteam.test_rt5_tensor_hooks import MATMUL

pytest.importorskip("torch")

SWAPPED_TORCH = '''
import sys
import types
import torch
import torch.nn as nn

_real, _seen_in_put = torch, []


class _Torch(types.ModuleType):
    def __getattr__(self, name):
        f = sys._getframe(1)
        while f is not None and f.f_code.co_name != "cmd_put":
            f = f.f_back
        if f is not None:
            _seen_in_put.append(name)  # the inputs are in place and no clock runs
        return getattr(_real, name)


_f = sys._getframe(0)
while _f is not None and _f.f_code.co_name != "cmd_setup":
    _f = _f.f_back
_f.f_locals["self"].torch = _Torch("torch")


class ModelNew(nn.Module):
    def forward(self, A, B):
        if _seen_in_put:
            raise RuntimeError("put ran the candidate's torch: " + ", ".join(sorted(set(_seen_in_put))))
        return torch.matmul(A, B)
'''


def test_put_never_runs_a_torch_module_the_candidate_put_on_the_worker():
    d = world_readable()
    res = run(write(d, "task.py", MATMUL), write(d, "solution.py", SWAPPED_TORCH))
    assert res["correct"] is True and res["verdict"] in ("faster", "same", "slower"), res
