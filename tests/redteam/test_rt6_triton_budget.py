"""Red team 6: the candidate time budget leaves Triton's CPU interpreter out once the base
trial has counted a Triton launch (round 5 closed only the `import triton` without a launch).
A forward that launches one tiny Triton kernel and then sleeps just under the per-call timeout
holds kopt for every trial: sleeping 8 s per forward, `unverified` after 240 s (201 s of
correctness) against a budget of about call_timeout_s + 20x the reference's requests; at
110 s per forward, about 45 minutes per evaluation, and a search pays that per proposal.

Partly fixed: interpreted Triton has a budget too, with a larger factor (the interpreter is
slow, not unbounded): call_timeout_s + 500x the reference's requests
(eval_session.INTERPRETED_TIME_FACTOR). On this tiny task (the reference's requests take ~0 s)
the sleeping forward times out after ~20 s, which this test holds; on a task whose reference
takes ~20 ms a request, 2.5 s sleeps still fit in the 500x (open: an idle-time budget needs the
scheduler's accounting, since load also makes a CPU-bound worker wait).
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import run, world_readable, write

TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2.0


def get_inputs():
    return [torch.randn(16, 256)]


def get_init_inputs():
    return []
'''

SLEEPY_TRITON = '''
import time

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _relu2(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(y_ptr + offs, tl.maximum(x, 0.0) * 2.0, mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        n = x.numel()
        _relu2[(triton.cdiv(n, 1024),)](x, y, n, BLOCK=1024)
        time.sleep(2.5)
        return y
'''


def test_a_sleeping_triton_forward_meets_the_time_budget():
    pytest.importorskip("torch")
    pytest.importorskip("triton")
    d = world_readable()
    res = run(write(d, "task.py", TASK), write(d, "sleepy.py", SLEEPY_TRITON), call_timeout_s=10, edge_shapes=False)
    assert res["verdict"] == "timeout", res
