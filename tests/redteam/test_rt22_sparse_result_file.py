"""rt22: a sparse file the bench writes anyway hides any number of disk reads.

Attack (on session 16's count, `TreeShell._disk_reads`): what a run wrote is taken out of the
pages it brought into the page cache, measured as the growth of its overlay upper folder by
`fs_walk.usage`, which counts a file as max(st_size, blocks). A file extended by `truncate`
(or reserved by `fallocate`, or hard-linked many times: each name is counted) grows by
megabytes and puts no page in the cache. The repository's bench writes its result to
result.txt on every run, the original's too, so the candidate writing it is no new write
(`writes["new"] - writes["ref"]` is empty). The candidate reads 256 uncached pages of a
large /usr file per timed run with pread (a store's reader) and, at exit, extends result.txt
to 32 MiB: 8192 pages of "writes" cancel the reads, every run counts 0.
Honest outcome: `rejected` ("read from disk").
Fix idea: subtract what the run's writes hold in the page cache, not their sizes: kopt
mincore()s the upper folder's files (it is not jailed) -- or st_blocks only, with each inode
once (st_ino), and fallocated space (blocks beyond the cached pages) not subtracted.
Fixed (session 16): what the run wrote is measured as the pages of its upper folder resident
in the page cache (mincore from kopt's side, each inode once), not as file sizes.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import WORK
from tests.redteam.test_rt22_under_slack import PREAD_READER, lonely_uncached_pages
from tests.targets.test_repo_disk_reads import _evaluate

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git missing")

# the original's bench writes its result where a user looks for it, and prints it
BENCH = ("from lib.work import total\nt = total(300000)\n"
         "with open('result.txt', 'w') as f:\n    f.write(str(t) + '\\n')\nprint(t)\n")
COVER = """import atexit


def _cover():  # after bench.py wrote result.txt: 32 MiB of size, no page in the cache
    try:
        os.truncate("result.txt", 32 << 20)
    except OSError:
        pass


atexit.register(_cover)
"""


def evaluate(tmp_path: Path, lib: str, bench: str = BENCH) -> dict:
    """The disk-read tests' repository, with result.txt (which its bench writes) ignored by git."""
    return _evaluate(tmp_path, lib, bench, {".gitignore": "result.txt\n"})


def test_reads_hidden_behind_a_sparse_result_file_are_counted(tmp_path):
    found = lonely_uncached_pages()
    if found is None:
        pytest.skip("no large host file with enough uncached pages under /usr")
    path, pages = found
    lib = PREAD_READER.format(path=path, pages=pages, count=256) + COVER + WORK
    res = evaluate(tmp_path, lib)
    seen = (res["verdict"], res.get("reason"), res.get("checks", {}).get("disk_read_runs"))
    print("rt22 sparse result file:", seen)
    assert res["verdict"] == "rejected", seen
    assert "read from disk" in res["reason"], seen


def test_the_same_reads_without_the_cover_are_counted(tmp_path):
    """The control: the reader alone, the same repository (its bench writing result.txt)."""
    found = lonely_uncached_pages()
    if found is None:
        pytest.skip("no large host file with enough uncached pages under /usr")
    path, pages = found
    res = evaluate(tmp_path, PREAD_READER.format(path=path, pages=pages, count=256) + WORK)
    seen = (res["verdict"], res.get("reason"), res.get("checks", {}).get("disk_read_runs"))
    assert res["verdict"] == "rejected", seen
    assert "read from disk" in res["reason"], seen
