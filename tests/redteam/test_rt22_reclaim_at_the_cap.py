"""rt22: filling the run's memory cap makes the kernel reclaim the pages the run read.

Attack (on session 16's count, `TreeShell._disk_reads`): a run's disk reads are its cgroup's
major faults and the *net* pages it brought into the page cache. A buffered pread faults
nothing, so only the net page-cache number sees it -- and the run can lower that number
again: its pages are charged to its own memory cgroup, whose cap (Limits.memory_mb, 8 GiB
for a repository run; RLIMIT_AS tells the run the number) makes the kernel reclaim the
cgroup's clean file pages, oldest first, before anything else. The candidate preads 256
uncached pages of a large /usr file (a store's reader), then two child processes allocate
anonymous memory past the cap: the kernel reclaims every file page the cgroup holds (the
reader's included) and then OOM-kills the largest child. The pages are gone from the cache
and from the count: `now - cached` goes negative, the run counts 0 disk reads. Nothing in
the repository path looks at memory.failcnt / oom_kill.
The test lowers the cap to 1 GiB (TreeShell's default memory_mb) so as not to fill 8 GiB of
this shared machine; at 8 GiB the same costs a couple of seconds of page-touching per run.
Honest outcome: `rejected` ("read from disk").
Fix idea: count the pages charged, not the net: the cgroup's pgpgin (v1 memory.stat
total_pgpgin counts every page charged; less the run's own writes and anonymous memory, e.g.
with anon pgfault/rss deltas) or workingset_refault/pgsteal (v1: a run whose file pages were
reclaimed, memory.stat total_pgscan/total_pgsteal or failcnt > 0, is suspect: treat a cap hit
in a timed run as a failed run); or the blkio cgroup's read bytes.
Fixed (session 16): a run that hit its memory cap (memory.failcnt grew) counts as reading
from disk; the reads here are also in the runner's blocks-read count again.
"""
from __future__ import annotations

import shutil

import pytest

from kopt.agent.targets.repo import shell_commands
from tests.redteam._work_repo import WORK
from tests.redteam.test_rt22_under_slack import PREAD_READER, lonely_uncached_pages
from tests.targets.test_repo_disk_reads import _evaluate

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git missing")
CAP_MB = 1024

RECLAIM = """import resource, time


def _fill_the_cap():
    cap = resource.getrlimit(resource.RLIMIT_AS)[0]  # the worker's memory_mb, the cgroup's cap too
    if cap <= 0 or cap > 64 << 30:
        return
    kids = []
    for _ in range(2):  # each under its own RLIMIT_AS, together past the cgroup's cap
        pid = os.fork()
        if pid == 0:
            hog = []
            try:
                while sum(map(len, hog)) < cap * 5 // 8:
                    hog.append(b"\\1" * (16 << 20))
            except MemoryError:
                pass
            time.sleep(0.3)
            os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)  # one OOM-killed once the cgroup's file pages are all reclaimed


_fill_the_cap()
"""


def _lower_the_cap(monkeypatch) -> None:
    """Every TreeShell's memory cap CAP_MB instead of 8192 MB."""
    defaults = list(shell_commands.TreeShell.__init__.__defaults__)
    assert defaults[2] == 8192  # (keep, wall_s, memory_mb, ...)
    defaults[2] = CAP_MB
    monkeypatch.setattr(shell_commands.TreeShell.__init__, "__defaults__", tuple(defaults))


def test_reads_reclaimed_at_the_memory_cap_are_counted(tmp_path, monkeypatch):
    found = lonely_uncached_pages()
    if found is None:
        pytest.skip("no large host file with enough uncached pages under /usr")
    _lower_the_cap(monkeypatch)
    path, pages = found
    lib = PREAD_READER.format(path=path, pages=pages, count=256) + RECLAIM + WORK
    res = _evaluate(tmp_path, lib)
    seen = (res["verdict"], res.get("reason"), res.get("checks", {}).get("disk_read_runs"))
    print("rt22 reclaim at the cap:", seen)
    assert res["verdict"] == "rejected", seen
    assert "read from disk" in res["reason"], seen


def test_the_same_reads_under_the_same_cap_are_counted(tmp_path, monkeypatch):
    """The control: the reader alone under the same 1 GiB cap is seen."""
    found = lonely_uncached_pages()
    if found is None:
        pytest.skip("no large host file with enough uncached pages under /usr")
    _lower_the_cap(monkeypatch)
    path, pages = found
    res = _evaluate(tmp_path, PREAD_READER.format(path=path, pages=pages, count=256) + WORK)
    seen = (res["verdict"], res.get("reason"), res.get("checks", {}).get("disk_read_runs"))
    assert res["verdict"] == "rejected", seen
    assert "read from disk" in res["reason"], seen
