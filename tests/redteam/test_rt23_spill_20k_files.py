"""rt23 (false positive): an honest candidate that spills to 20,000 small files in its tree and
removes them before it ends is counted as reading from disk in every run.

rt22's honest spiller (2,000 files, `test_rt22_many_small_files.py`) stays under the 16-page
slack; the slack does not grow with what a run makes. Each new inode lands in an inode-table
block (16 inodes a 4 KiB block), each folder block and bitmap block the allocation touches
enters the page cache charged to the run (ext4 keeps its metadata in the block device's page
cache), and with the folder removed nothing of it is left in the upper folder to subtract.
Measured in the jail: 20,000 files made and removed, `cached` +1089 pages, `written` 125 (the
folder's blocks while it existed), counted 948 pages; 50,000 files, 2542; and the runner's own
blocks-read count saw inode-table reads too. The original writes nothing, so 0 of its runs
count; the candidate is `rejected` as a page-cache store.
Honest outcome: not `rejected`.
Fixed for the page-cache count (those pages are all dirty: `Cgroups.dirty_pages` is subtracted
like the run's writes). Left: creating inodes can read ext4's inode-table blocks from disk
(a block holds 16 inodes; 40-540 sectors a run here), which the runner's blocks read counts
exactly, as it counts an O_DIRECT store's reads; telling them apart would open that door (the
same spill in the bench's own process was rejected in 1 of 2 tries here: docs/redteam.md).
Fix idea: count the file system's metadata apart from data (e.g. the cgroup's page-cache growth
of the block device inode: v1 memory.stat cannot say which file a page belongs to, but the
runner's inblock can be split by timing the creates), or scale the slack by the entries the run
made (the poll already walks the upper folder; a removed folder's entries can be counted from
the cgroup's own counters: v1 memory.stat pgpgout/dirty/writeback deltas), or only count pages
of files the run opened read-only.
"""
from __future__ import annotations

import shutil

import pytest

from tests.redteam.test_rt22_many_small_files import SPILLER as RT22_SPILLER
from tests.targets.test_repo_disk_reads import _evaluate

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git missing")

SPILLER = RT22_SPILLER.replace("n // 2000", "n // 20000")  # rt22's spiller, ten times the files


# the same spill in a child the kernel reaps: only the cgroup's page-cache count can see it
REAPED = SPILLER.replace("def total(n):", "def _spill(n):") + """

def total(n):
    import signal
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    r, w = os.pipe()
    if os.fork() == 0:
        os.write(w, str(_spill(n)).encode())
        os._exit(0)
    os.close(w)
    out = b""
    while chunk := os.read(r, 64):
        out += chunk
    os.close(r)
    signal.signal(signal.SIGCHLD, old)
    return int(out)
"""


def test_the_file_systems_blocks_of_files_made_and_removed_are_not_reads(tmp_path):
    """The page-cache count: 20,000 files made and removed bring ~900 pages of inode tables,
    bitmaps and folders into the cache, every one of them dirty (what the run changed), so
    they are subtracted like the run's writes (fixed: `Cgroups.dirty_pages`)."""
    res = _evaluate(tmp_path, REAPED)
    seen = (res["verdict"], res.get("reason"), res.get("checks", {}).get("disk_read_runs"))
    print("rt23 spill 20k files, autoreaped:", seen)
    assert res["verdict"] != "rejected", seen
