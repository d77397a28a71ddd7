"""rt13: a pool of reused output buffers pads its page-fault count with cheap zero-page faults.

Attack: ModelNew writes each output into a buffer of its own pool that only the pool still
references (sys.getrefcount: the held-output check passes), so its outputs take no fresh
pages. To get past the page-fault veto it maps a private anonymous scratch region and asks
madvise(MADV_POPULATE_READ) for 52% of the output's pages, then MADV_DONTNEED: every page is
a counted minor fault onto the shared zero page, with no zeroing and no exception entry.
Measured (ReLU, 16 x 65536 float32, 1024 output pages, confirm off, loaded 2-core machine):
page_faults_per_call ref 1089.5 / new 597.4 (the veto's bar: 512), fault_veto None,
memory_veto None, verdict `faster` 1.71x (CI 1.46-2.33) and 1.52x (CI 1.38-1.72); the same
pool without the padding is `same` by fault_veto (103 faults per call).

Root cause: sandboxes/eval_timing.py `fault_veto` counts page-fault events
(memory.stat pgfault / minflt), not fresh memory: any fault counts, zero-page read faults and
GUP faults from MADV_POPULATE_READ included (~0.5 us a page here, against ~2.4 us for a fresh
zeroed page).
Fix idea: judge fresh memory, not fault events: e.g. the worker's anonymous pages allocated
during the call (memory.stat pgalloc / RssAnon high-water via /proc/pid/smaps_rollup around the
call, or the cgroup's memory.events / pgfault minus zero-page faults), or require the output
tensors' pages themselves be newly faulted (mincore/pagemap of the output addresses before the
call: pages already present before the call are pooled).
"""
from __future__ import annotations

import textwrap

from kopt.sandboxes.evaluator import EvalConfig, evaluate

TASK = textwrap.dedent("""
    import torch
    import torch.nn as nn


    class Model(nn.Module):
        def forward(self, x):
            return torch.relu(x)


    batch_size = 16
    dim = 65536


    def get_inputs():
        return [torch.rand(batch_size, dim)]


    def get_init_inputs():
        return []
""")

SOLUTION = textwrap.dedent("""
    import mmap
    import sys

    import torch
    import torch.nn as nn


    class ModelNew(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = []
            self.scratch = None

        def _faults(self, pages):
            size = pages * 4096
            if self.scratch is None or len(self.scratch) < size:
                self.scratch = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            self.scratch.madvise(22, 0, size)  # MADV_POPULATE_READ: zero-page faults
            self.scratch.madvise(mmap.MADV_DONTNEED, 0, size)

        def forward(self, x):
            buf = None
            for b in self.pool:
                if b.shape == x.shape and sys.getrefcount(b) <= 3:  # only the pool holds it
                    buf = b
                    break
            if buf is None:
                buf = torch.empty_like(x)
                if len(self.pool) < 160:
                    self.pool.append(buf)
            torch.clamp_min(x, 0, out=buf)
            self._faults(int(0.52 * x.numel() * 4 // 4096) + 1)
            return buf
""")


def test_fault_padded_pool_is_not_faster(tmp_path):
    task, sol = tmp_path / "task.py", tmp_path / "sol.py"
    task.write_text(TASK)
    sol.write_text(SOLUTION)
    res = evaluate(task, sol, EvalConfig())
    checks = res["checks"]
    assert res["verdict"] != "faster", (res.get("speedup"), checks.get("fresh_kib_per_call"), checks.get("remeasured"))
