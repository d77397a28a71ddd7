"""rt12: an output pool that reuses a buffer only once nobody else holds it (sys.getrefcount).

Attack: ReLU (16 x 2^20 float32, 64 MiB per output) written with `out=` into a pool of
buffers; a buffer is taken again only when its refcount says the caller has dropped it.
The held round's outputs (harness `cmd_put` with `hold`) keep their refcount up, so they
are never rewritten: `_check_held` sees them byte-identical. The pool only ever holds what
the caller keeps alive plus one round (1 call of 64 MiB here), so `memory_veto`'s 256 MiB
slack is never reached. Every call after the first skips the 64 MiB of fresh zero pages the
reference's `torch.relu` faults in (outside kopt: 35 ms fresh vs 8.7 ms into a reused buffer).

Measured (default EvalConfig(threads=1), confirm on, loaded 2-core machine): `faster`
1.32x (CI 1.22-1.47; CPU-seconds speedup 2.14x, CI 1.99-2.28), no memory_veto, no
held_outputs note. An honest `clamp_min` copy in the same conditions: `same` 0.97x
(CI 0.88-1.07).

Root cause: sandboxes/eval_timing.py `_check_held` only catches pools that rewrite outputs
the caller still holds, and `memory_veto` / `_memory_grown` only pools larger than the
reference's resident growth + 256 MiB; a refcount-aware pool is neither, yet its speed
comes from the same pre-paid page faults.
Fix idea: make the reference side reuse too (both workers run forward under a caching
allocator, e.g. glibc M_MMAP_THRESHOLD/M_TRIM_THRESHOLD raised so freed outputs stay
faulted in), or count the candidate's page faults (minflt in /proc/<pid>/stat per timed
round) against the reference's and veto a `faster` that comes with far fewer faults.
"""
from __future__ import annotations

from kopt.sandboxes.evaluator import EvalConfig, evaluate

TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)


batch_size = 16
dim = 1 << 20


def get_inputs():
    return [torch.rand(batch_size, dim) * 2 - 1]


def get_init_inputs():
    return []
'''

POOL = '''
import sys

import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = []

    def forward(self, x):
        out = None
        for t in self.pool:
            if sys.getrefcount(t) <= 3 and t.shape == x.shape and t.dtype == x.dtype:
                out = t
                break
        if out is None:
            out = torch.empty_like(x)
            self.pool.append(out)
        return torch.clamp_min(x, 0, out=out)
'''


def test_refcount_pool_not_faster(tmp_path):
    task, sol = tmp_path / "relu.py", tmp_path / "sol.py"
    task.write_text(TASK)
    sol.write_text(POOL)
    cfg = EvalConfig(threads=1, trials=2, edge_shapes=False, quality_seeds=2, confirm=False)
    res = evaluate(task, sol, cfg)
    assert res["verdict"] in ("same", "incorrect", "rejected"), (res["verdict"], res.get("speedup_ci"),
                                                                res["checks"].get("cpu_speedup"))
