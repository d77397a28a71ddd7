"""rt22 (false positive?): an honest candidate that makes many small files in its tree, and
removes them before it ends, against the 16-page slack.

Each new file costs the page cache more than its upper folder's growth shows at the end: its
inode's block of the inode table, its folder's blocks (the folder is removed: no growth is
left to subtract) and the journal's copies. The session-16 count subtracts what is left in the
upper folder and 16 pages; the rest counts as read from disk. The candidate spills its partial
sums to 2000 files in a scratch folder of the tree and merges them (a plausible, if slow, way
to bound memory), then removes the folder; the original writes nothing.
Honest outcome: not `rejected`.
Fix idea (if it fails): the slack scaled by what the run made (entries created, seen by the
poll, or the cgroup's written pages: v1 memory.stat pgpgout/dirty/writeback deltas).
"""
from __future__ import annotations

import shutil

import pytest

from tests.targets.test_repo_disk_reads import _evaluate

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git missing")

SPILLER = """import os, shutil


def total(n):
    here = os.path.join(os.path.dirname(__file__), "spill")
    os.makedirs(here, exist_ok=True)
    step = max(1, n // 2000)
    for k, lo in enumerate(range(0, n, step)):
        with open(os.path.join(here, "part-%05d" % k), "w") as f:
            f.write(str(sum((i * i) % 7 for i in range(lo, min(n, lo + step)))))
    s = 0
    for name in sorted(os.listdir(here)):
        with open(os.path.join(here, name)) as f:
            s += int(f.read())
    shutil.rmtree(here)
    return s
"""


def test_an_honest_candidate_making_many_files_is_not_rejected(tmp_path):
    res = _evaluate(tmp_path, SPILLER)
    seen = (res["verdict"], res.get("reason"), res.get("checks", {}).get("disk_read_runs"))
    print("rt22 many small files:", seen)
    assert res["verdict"] != "rejected", seen
