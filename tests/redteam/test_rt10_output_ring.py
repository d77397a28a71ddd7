"""rt10: a ModelNew whose outputs skip the fresh pages the reference's take is `faster`.

Attack: ReLU as `torch.clamp_min(x, 0, out=buf)` into a ring of 16 output tensors allocated
(and touched) once; the k-th call returns ring[k % 16]. Every output kopt sees is right,
because the harness serialises each round's outputs before the ring wraps, but the module is
wrong as a module: the tensor a caller got from call k is overwritten by call k + 16
(`y = m(x); [m(x2) for _ in range(16)]` leaves `y` holding relu(x2)).
Before: `faster` 1.61x (CI 1.46-1.73; CPU seconds 1.81x; confirmed on a fresh pair of
workers 1.73x/1.61x) on a 256x4096 ReLU whose arithmetic is the reference's.
Root cause: the speed is the allocation the reference pays and the ring skips. kopt fixes
glibc's mmap threshold at 64 KiB in both workers (eval_session._worker_env), so every output
of the reference is fresh kernel pages (page faults + zeroing, munmap in `put`); a candidate
that keeps its outputs alive between calls never pays them. Nothing checks that a returned
tensor stays unchanged once later calls run: outputs are serialised at once and dropped at the
next `put`, and within one round the ring only has to be longer than the round's calls.
Variant (`pool`, no aliasing at all): one 768 MiB tensor zeroed in __init__ (its pages faulted
in setup, out of the clock); each call's output is the next unused slice of it. Every output is
distinct memory, the arithmetic is the reference's, and it was `faster` 1.40x (CI 1.31-1.52;
first pair 1.66x) -- the page faults and zeroing of its outputs were paid before the clock.
Fix: keep a checked round's outputs alive (in the worker, and their bytes in kopt) across the
following rounds and compare them again at the end ("an output changed after later calls:
it aliases the module's state" -> incorrect), and/or refuse outputs whose storage the model
still holds after forward (storage use counts / data_ptr seen again across calls, as a second
line); and time with an allocator state a real caller would have, so output reuse gains nothing.
For the pool: memory the candidate holds after setup beyond the reference's (RSS from /proc,
outside its reach) is work done before the clock -- bound it, or count each side's minor page
faults in the timed calls (/proc/<pid>/stat minflt) and refuse a candidate that takes none for
outputs the reference pays fresh pages for.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from kopt.sandboxes.evaluator import EvalConfig, evaluate

TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.randn(256, 4096)]


def get_init_inputs():
    return []
'''
RING = '''
import torch

RING = 16  # more buffers than the calls of one timed round


class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ring = {}
        self.i = 0

    def forward(self, x):
        bufs = self.ring.get((x.shape, x.dtype))
        if bufs is None:
            bufs = self.ring[(x.shape, x.dtype)] = [torch.zeros_like(x) for _ in range(RING)]
        out = bufs[self.i % RING]
        self.i += 1
        return torch.clamp_min(x, 0.0, out=out)
'''
POOL = '''
import torch

POOL_BYTES = 768 << 20  # every output of the evaluation gets fresh, already-faulted memory


class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = torch.zeros(POOL_BYTES // 4)  # pages faulted here, in setup, out of the clock
        self.off = 0

    def forward(self, x):
        n = x.numel()
        if self.off + n > self.pool.numel():
            self.off = 0
        out = self.pool[self.off:self.off + n].view(x.shape)
        self.off += n
        return torch.clamp_min(x, 0.0, out=out)
'''


@pytest.mark.parametrize("solution", [RING, POOL], ids=["ring", "pool"])
def test_output_memory_tricks_are_not_faster(tmp_path: Path, solution: str) -> None:
    task, sol = tmp_path / "relu_256x4096.py", tmp_path / "solution.py"
    task.write_text(TASK)
    sol.write_text(solution)
    res = evaluate(task, sol, EvalConfig(max_timing_s=10, setup_timeout_s=60, call_timeout_s=30, quality_seeds=2))
    assert res["verdict"] != "faster", (res["speedup"], res["speedup_ci"], res["checks"].get("remeasured"))
    if solution is RING:  # a caller holding an output of round k sees it overwritten later
        assert res["verdict"] == "incorrect" and "changed during the" in res["reason"], (res["verdict"], res["reason"])
    else:  # no aliasing before the pool wraps: the memory it faulted in at setup is what is not believed
        assert {"memory_veto", "fresh_memory_veto"} & set(res["checks"]) or res["verdict"] == "incorrect", \
            (res["verdict"], res["checks"])
