"""rt22: O_DIRECT reads of a host file are no longer counted, and the cache below the page
cache (the hypervisor's, the disk's) answers them.

Attack (on session 16's count, `TreeShell._disk_reads`): to stop rejecting an honest O_DIRECT
reader (rt21), a run's disk reads are now its cgroup's major faults and the pages it brought
into the page cache; the runner's rusage (blocks read, which counted O_DIRECT) is dropped
where the cgroup numbers exist. An O_DIRECT read brings nothing into the page cache and
faults nothing, so it is never counted. But it is still a read from the disk, and whatever
caches blocks below this kernel keeps what the warm-up read: on this VM (a Firecracker guest
whose disk is a host file, in the host's page cache) an O_DIRECT 4 KiB read of a block read
before takes ~50 us, of a block not read lately ~140 us (measured below, in the precondition).
That is the page-cache store again, one level down: the warm-up reads with O_DIRECT the
blocks that encode the answer, a timed run reads a region with O_DIRECT and times each block.
The test's candidate reads 256 fresh cold blocks of a large /usr file with O_DIRECT in every
timed run (a store's reader) and computes the honest answer.
Honest outcome: `rejected` ("read from disk"), as the same reader with buffered reads is.
Fix idea: refuse O_DIRECT in the jail's seccomp filter (open/openat with O_DIRECT, fcntl
F_SETFL O_DIRECT; openat2, whose flags seccomp cannot see, ENOSYS): EINVAL is what a
filesystem without O_DIRECT (tmpfs) answers, which careful code already falls back from;
or count the runner's blocks read again when they exceed what the run could read from its
own tree.
Fixed (session 16): the runner's count (blocks read by the processes it waited for, O_DIRECT
included) counts again beside the cgroup's; O_DIRECT reads count, and the reason says so.
"""
from __future__ import annotations

import mmap
import os
import random
import shutil
import statistics
import time

import pytest

from tests.redteam._work_repo import WORK
from tests.redteam.test_rt22_under_slack import lonely_uncached_pages
from tests.targets.test_repo_disk_reads import _evaluate

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git missing")

DIRECT_READER = """import mmap, os, random


def _read_cold_blocks():
    # a store's reader one level down: O_DIRECT reads, timed, of blocks the host may hold
    fd = os.open({path!r}, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT needs
    try:
        for page in random.sample({pages!r}, 256):
            os.preadv(fd, [buf], page * 4096)
    finally:
        os.close(fd)


_read_cold_blocks()
"""


def _lower_cache(path: str, pages: list[int]) -> tuple[float, float, float]:
    """(median us of a first O_DIRECT read, of a second read of the same blocks, share of first
    reads over twice the second's median): a cache below the page cache, if the share is large."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, 4096)

    def timed(page: int) -> float:
        start = time.perf_counter_ns()
        os.preadv(fd, [buf], page * 4096)
        return (time.perf_counter_ns() - start) / 1000

    try:
        sample = random.sample(pages, 100)
        first = [timed(p) for p in sample]
        second = [timed(p) for p in sample]
    finally:
        os.close(fd)
    again = statistics.median(second)
    return statistics.median(first), again, sum(t > 2 * again for t in first) / len(first)


def test_direct_reads_of_cold_host_blocks_are_counted(tmp_path):
    found = lonely_uncached_pages()
    if found is None:
        pytest.skip("no large host file with enough uncached pages under /usr")
    path, pages = found
    try:
        first, again, cold = _lower_cache(path, pages[-1000:])
    except OSError as e:
        pytest.skip(f"no O_DIRECT here: {e}")
    if cold < 0.1:
        pytest.skip(f"no cache below the page cache here (first reads {first:.0f} us, again {again:.0f} us)")
    print(f"rt22 O_DIRECT: first read {first:.0f} us, again {again:.0f} us, {cold:.0%} of first reads cold")
    res = _evaluate(tmp_path, DIRECT_READER.format(path=path, pages=pages[:-1000]) + WORK)
    seen = (res["verdict"], res.get("reason"), res.get("checks", {}).get("disk_read_runs"))
    print("rt22 O_DIRECT reader:", seen)
    assert res["verdict"] == "rejected", seen
    assert "read from disk" in res["reason"], seen
