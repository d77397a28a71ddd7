"""rt24: reads hidden behind pages counted twice, dirty and under writeback at once.

Attack (on session 17's count, `TreeShell._disk_reads`): the pages a run wrote are taken out
of the pages it brought into the page cache as max(its upper folder's resident pages, the
growth of the cgroup's dirty + writeback pages). A folio re-dirtied while its writeback is
still in flight is both dirty and under writeback (memory.stat counts it in `dirty` and in
`writeback`), so a run that ends by starting writeback of a large file it wrote
(sync_file_range(SYNC_FILE_RANGE_WRITE)) and re-dirtying it tail first (the tail is written
back last) could have up to twice that file's pages subtracted, and the reads of an
autoreaped child (seen by the page-cache count alone, red team 21) hidden under the surplus.
The repository's bench writes result.txt on every run, the original's too; the candidate grows
it to 128 MiB at exit (well under the 1 GiB the tree may grow by).
Measured here: the writeback of 64-800 MiB ends 15-60 ms after it starts, before kopt reads
the counters (the runner reaps, settles the counters and answers first); dirty + writeback
grew by exactly the file's pages in every run, never more. Honest outcome: `rejected`.
"""
from __future__ import annotations

import shutil

import pytest

from tests.redteam._work_repo import WORK
from tests.redteam.test_rt22_sparse_result_file import evaluate
from tests.redteam.test_rt22_under_slack import lonely_uncached_pages

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git missing")

READER = """import ctypes, os, random, signal


def _read_uncached_pages():  # an autoreaped child: only the page-cache count sees it
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    r, w = os.pipe()
    if os.fork() == 0:
        fd = os.open({path!r}, os.O_RDONLY)
        for page in random.sample({pages!r}, 256):
            os.pread(fd, 1, page * 4096)
        os.write(w, b"x")
        os._exit(0)
    os.close(w)
    os.read(r, 1)
    os.close(r)
    signal.signal(signal.SIGCHLD, old)


def _cover():  # after bench.py wrote result.txt: 128 MiB, written back and re-dirtied at once
    libc = ctypes.CDLL(None, use_errno=True)
    size, mib = 128 << 20, b"\\1" * (1 << 20)
    try:
        fd = os.open("result.txt", os.O_RDWR)
    except OSError:
        return
    text = os.read(fd, 64)
    for at in range(0, size, 1 << 20):
        os.pwrite(fd, mib, at)
    libc.sync_file_range(fd, ctypes.c_longlong(0), ctypes.c_longlong(0), 2)  # SYNC_FILE_RANGE_WRITE
    for at in range(size - (1 << 20), -1, -(1 << 20)):  # under writeback now, dirty again
        os.pwrite(fd, b"\\2" * 4096, at)
        os.pwrite(fd, b"\\2" * 4096, at + (1 << 19))
    os.pwrite(fd, text, 0)
    os.close(fd)


import atexit  # noqa: E402

atexit.register(_cover)
_read_uncached_pages()
"""


def test_reads_hidden_behind_pages_dirty_under_writeback_are_counted(tmp_path):
    found = lonely_uncached_pages()
    if found is None:
        pytest.skip("no large host file with enough uncached pages under /usr")
    path, pages = found
    res = evaluate(tmp_path, READER.format(path=path, pages=pages) + WORK)
    seen = (res["verdict"], res.get("reason"), res.get("checks", {}).get("disk_read_runs"))
    print("rt24 redirty under writeback:", seen)
    assert res["verdict"] == "rejected", seen
    assert "read from disk" in res["reason"], seen
