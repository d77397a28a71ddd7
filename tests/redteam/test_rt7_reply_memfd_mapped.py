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
from tests.redteam.test_rt7_reply_memfd import DIRECT

# The round-7 forward without its self-restoring `_write_shm` patch.
MAPPED = DIRECT.split("        if i == n - 1:")[0] + "        return out\n"


def test_outputs_computed_into_the_mapped_reply_memfd_are_refused():
    pytest.importorskip("torch")
    d = world_readable()
    res = run(write(d, "task.py", relu_task(16, 16384)), write(d, "mapped.py", MAPPED), max_timing_s=6, rounds=8)
    assert res["verdict"] == "rejected", res
