"""rt21: a reader whose parent ignores SIGCHLD reads from disk in every timed run, uncounted.

Attack (on bb71bed's disk-read rule): `repo_runner` counts major faults and blocks read as
RUSAGE_CHILDREN deltas, i.e. the rusage of processes that were *waited for*. A child of a
process that ignores SIGCHLD (or sets SA_NOCLDWAIT) is reaped by the kernel at exit
(exit_notify's autoreap) and its rusage is added to nobody's: `_end_the_rest` never sees it,
it is already gone. So the page-cache store's reader (the fault-timing read of
test_repo_disk_reads.py, fresh uncached pages of a large /usr file on every run) moves into
such a child, sends what it learnt back through a pipe, and exits: the runner counts 0 disk
reads on every timed run.
Honest outcome: `rejected` (read from disk), as the same reader in the bench itself is.
Fix: kopt also reads the major faults of the run's memory cgroup (memory.stat) before and after
each run, which the kernel counts as they happen, whoever reaps the process. The same child
timing buffered `pread`s faults nothing; fixed in session 16 by counting the pages the run
brought into the page cache (memory.stat `cache` less `shmem` and what the run wrote).
"""
from __future__ import annotations

import shutil

import pytest

from tests.redteam._work_repo import WORK
from tests.targets.test_repo_disk_reads import READER, _big_uncached_file, _evaluate

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git missing")

AUTOREAPED = """import signal
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reaped by the kernel: no rusage for anyone
r, w = os.pipe()
if os.fork() == 0:
    os.close(r)
    _read_uncached_pages()  # (a store's reader: what it learnt would go back through w)
    os.write(w, b"1")
    os._exit(0)
os.close(w)
os.read(r, 1)
os.close(r)
"""


# the same reader with buffered reads instead of faults (timing `pread` tells a cached page too)
PREAD = READER.replace("""        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        m.madvise(mmap.MADV_RANDOM)
        for page in random.sample({pages!r}, 32):
            m[page * 4096]
        m.close()""", """        for page in random.sample({pages!r}, 32):
            os.pread(f.fileno(), 1, page * 4096)""")


@pytest.mark.parametrize("reader", [READER, PREAD], ids=["faults", "preads"])
def test_disk_reads_of_an_autoreaped_child_are_counted(tmp_path, reader):
    assert reader is READER or "os.pread" in reader
    found = _big_uncached_file()
    if found is None:
        pytest.skip("no large host file with enough uncached pages under /usr")
    path, pages = found
    lib = reader.format(path=path, pages=pages, setsid=AUTOREAPED) + WORK
    res = _evaluate(tmp_path, lib)
    seen = (res["verdict"], res.get("reason"), res.get("checks", {}).get("disk_read_runs"))
    assert res["verdict"] == "rejected", seen
    assert "read from disk" in res["reason"], seen
