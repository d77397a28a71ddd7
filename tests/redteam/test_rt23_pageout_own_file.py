"""rt23: a store read from the page cache of the candidate's own data file, whose pages the
reader evicts again with madvise(MADV_PAGEOUT): any number of disk reads a run, none counted.

Attack (on `TreeShell._disk_reads`): with a memory cgroup a run's disk reads are the most of
(the runner's waited-for rusage, the cgroup's major faults, the pages newly in the page cache
less what the run wrote and CACHE_SLACK_PAGES). An autoreaped child (red team 21) is seen only
by the last, so it was left at most 16 pages a run. But the page-cache count is *net*, and a run
can take its pages back out of the cache without reaching its memory cap: madvise(MADV_PAGEOUT)
reclaims the mapped pages of a file the caller owns or may write (mm/madvise.c
can_do_file_pageout), and a repository's tree is the worker's own (jail.sh: an id-mapped mount,
under the overlay the mapping's file is the lower file itself). The jail's filter refuses
fadvise and readahead, not madvise.
So the store's medium is a data file of the tree (here the user's 1 MiB `data.txt`: fixtures, a
data set; a patch may change only the code under optimization): its pages stay in the host's
page cache between runs, the tree is never rewritten. Every run a child of a process ignoring
SIGCHLD preads every page of it -- those the host had not cached come from disk, their times
are the store's bits -- then maps the file, touches the pages (all cached now: minor faults)
and pages them out again (after mbind(MPOL_MF_MOVE), whose lru_add_drain_all() puts folios
still in another CPU's LRU batch on the LRU, where MADV_PAGEOUT can take them). A real store
would evict only the pages that were read from disk, so the next run finds it as it was.
Measured in the jail: 200-256 uncached pages preaded a run, ~50 us each (2 us cached), 0-1 of
4 timed runs counted (a 16-64-page folio left over now and then); the control, the same child
waited for, is counted in 4 of 4 by the runner's blocks read.
Honest outcome: `rejected` ("read from disk"), as the control is.
Fixed: the jail's seccomp filter refuses madvise MADV_PAGEOUT / MADV_COLD, process_madvise and
migrate_pages (jailhelp.py); the reader here goes on without the eviction, and is counted.
Fix ideas at the time: count pages charged, not the net: v1 memory.stat total_pgpgin (every page charged
to the cgroup) less the run's own writes and anonymous pages, or refuse MADV_PAGEOUT/MADV_COLD
in the jail's seccomp filter (madvise advice 20 or 21; nothing honest in a bench needs it), and
mbind/set_mempolicy's MPOL_MF_MOVE with them (the drain).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from kopt.agent.targets.repo.repo_target import RepoTarget
from tests.redteam._work_repo import WORK, work_repo
from tests.redteam.test_repo_attacks import patch_of
from tests.targets.test_repo_disk_reads import BENCH

PY = sys.executable
pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git missing")

TABLE = "".join(f"{i:07d}\n" for i in range(1 << 17))  # 1 MiB: 256 pages

READER = """import ctypes, mmap, os, signal, time

_TABLE = os.path.join(os.path.dirname(__file__), "..", "data.txt")


def _drain_every_cpu():
    # mbind(MPOL_MF_MOVE) calls lru_add_drain_all(), whatever the range (a page of our own here)
    page = mmap.mmap(-1, 4096)
    page[0] = 1
    addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
    mask = ctypes.c_ulong(1)
    ctypes.CDLL(None).syscall(237, ctypes.c_void_p(addr), ctypes.c_size_t(4096), 2, ctypes.byref(mask), 64, 2)


def _read_the_store():
    old = signal.signal(signal.SIGCHLD, signal.{sigchld})  # SIG_IGN: reaped by the kernel, no rusage
    r, w = os.pipe()
    if os.fork() == 0:
        fd = os.open(_TABLE, os.O_RDONLY)
        size = os.fstat(fd).st_size
        slow = 0
        for at in range(0, size, 4096):  # the store's bits: which pages come from disk
            t = time.perf_counter()
            os.pread(fd, 1, at)
            slow += time.perf_counter() - t > 20e-6
        m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        for at in range(0, size, 4096):
            m[at]
        for _ in range(4):  # what is paged out is unmapped; a folio skipped (busy) is tried again
            _drain_every_cpu()  # a folio still in another CPU's LRU batch is not paged out
            try:
                m.madvise(21)  # MADV_PAGEOUT: the pages read leave the cache (and the count) again
            except OSError:  # refused by the jail since: the store reads on, its pages stay counted
                pass
            time.sleep(0.02)
        os.write(w, b"%d" % slow)
        os._exit(0)
    os.close(w)
    os.read(r, 16)
    os.close(r)
    try:
        os.wait()  # SIGCHLD ignored: returns (ECHILD) once the child is gone, reaped by the kernel
    except ChildProcessError:
        pass
    signal.signal(signal.SIGCHLD, old)


_read_the_store()
"""


def _evaluate(tmp_path: Path, lib: str) -> dict:
    repo = work_repo(tmp_path / "user", BENCH, {"data.txt": TABLE})
    patch = patch_of(repo, tmp_path, {"lib/work.py": lib})
    t = RepoTarget.from_options(repo, test=f"{PY} -m pytest -q -p no:cacheprovider tests",
                                bench=f"{PY} bench.py", focus="lib/work.py:total")
    t.min_rounds, t.max_rounds, t.timing_budget_s = 4, 4, 5.0
    return t.evaluate(patch, [str(tmp_path / "run")])


def test_reads_paged_out_again_are_counted(tmp_path):
    """The reader autoreaped is counted as the same reader waited for (the control, whose
    blocks read reach the runner's rusage exactly): with page-out refused, the file stays
    cached after the warm-up and neither reads from disk; had the eviction gone through, the
    control would read in every run and the autoreaped one must be rejected with it."""
    res = _evaluate(tmp_path / "reaped", READER.format(sigchld="SIG_IGN") + WORK)
    seen = (res["verdict"], res.get("reason"), res.get("checks", {}).get("disk_read_runs"))
    control = _evaluate(tmp_path / "waited", READER.format(sigchld="SIG_DFL") + WORK)
    told = (control["verdict"], control.get("reason"), control.get("checks", {}).get("disk_read_runs"))
    print("rt23 pageout:", seen, "control:", told)
    assert res["verdict"] != "faster", seen
    if control["verdict"] == "rejected":
        assert res["verdict"] == "rejected" and "read from disk" in res["reason"], (seen, told)
    else:  # nothing read from disk: the store has no medium
        assert control["checks"]["disk_read_runs"]["new"] == 0, told
        assert res["checks"]["disk_read_runs"]["new"] == 0, seen
