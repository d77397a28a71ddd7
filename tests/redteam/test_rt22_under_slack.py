"""rt22: a page-cache store's reader that reads 12 uncached pages (once under the 16-page slack) per
timed run is never counted.

Attack (on session 16's count, `TreeShell._disk_reads`): with a memory cgroup a run's disk
reads are max(major faults, pages newly in the page cache - what the run wrote -
CACHE_SLACK_PAGES). A buffered `pread` faults nothing, and a small random pread (its page's
predecessor uncached too) brings exactly its own page in: no readahead. So a reader that
reads 12 uncached pages per run adds 12 pages to the cache, under the 16-page slack, and the
run counts 0 disk reads.
Twelve pages a run is plenty for a store: the warm-up reads (caches) every page of a region
of a large /usr file but a few holes, whose positions encode the answer; a timed run preads
the whole region, the cached pages fast and free, the holes slow -- one disk read each. 12
holes among 10,000 pages are log2(C(10000, 12)) ~ 130 bits per run; a run finds its own
region (each is spent once read) by probing one marker page per region, one more read.
Honest outcome: `rejected` ("read from disk"), as the same reader reading 32 pages is.
Fix idea: no page slack for pages of files the run did not write: count the cache delta with
no slack, and take the slack out of what kopt subtracts instead (e.g. subtract the pages the
run's writes actually hold, measured by mincore from kopt on the upper folder's files, plus
the folder and inode blocks they cost); or count reads per file class from the block layer
(blkio.throttle.io_serviced of the worker's cgroup: a read bio is a read, whatever its size).
Fixed (session 16): the runner's blocks-read count counts again (a reader in the bench itself
is seen exactly). Left: an autoreaped child reading at most 16 uncached pages a run, under
the slack (an honest run that writes files brings in 6-9 pages of file-system blocks).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import WORK
from tests.redteam.test_rt10_kb_page_cache_timing import _uncached_pages
from tests.targets.test_repo_disk_reads import _evaluate

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git missing")

# fresh uncached pages read with pread (no fault, no readahead: the page before each is uncached)
PREAD_READER = """import os, random


def _read_uncached_pages():
    fd = os.open({path!r}, os.O_RDONLY)
    try:
        for page in random.sample({pages!r}, {count}):
            os.pread(fd, 1, page * 4096)
    finally:
        os.close(fd)


_read_uncached_pages()
"""


def lonely_uncached_pages(min_pages: int = 1000) -> tuple[str, list[int]] | None:
    """A large /usr file and pages of it that are uncached, with their predecessor uncached too
    (a pread of one then reads that page alone), at least 4 apart (none is another's neighbour)."""
    for root in ("/usr/lib", "/usr/share", "/usr"):
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = Path(dirpath, name)
                try:
                    if path.is_symlink() or path.stat().st_size < 32 << 20:
                        continue
                    free = _uncached_pages(str(path))
                except OSError:
                    continue
                pages = [i for i in range(8, len(free) - 1, 4) if free[i] and free[i - 1] and free[i + 1]]
                if len(pages) >= min_pages:
                    return str(path), pages[:6000]
    return None


def test_a_reader_under_the_slack_is_counted(tmp_path):
    found = lonely_uncached_pages()
    if found is None:
        pytest.skip("no large host file with enough uncached pages under /usr")
    path, pages = found
    count = 12  # 12 fresh uncached pages a run: a store's ~130 bits (see above)
    res = _evaluate(tmp_path, PREAD_READER.format(path=path, pages=pages, count=count) + WORK)
    seen = (res["verdict"], res.get("reason"), res.get("checks", {}).get("disk_read_runs"))
    print("rt22 under the slack:", seen)
    assert res["verdict"] == "rejected", seen
    assert "read from disk" in res["reason"], seen


def test_the_same_reader_over_the_slack_is_counted(tmp_path):
    """The control: the same reader reading 40 pages a run is seen (its pages are uncached)."""
    found = lonely_uncached_pages()
    if found is None:
        pytest.skip("no large host file with enough uncached pages under /usr")
    path, pages = found
    res = _evaluate(tmp_path, PREAD_READER.format(path=path, pages=pages, count=40) + WORK)
    seen = (res["verdict"], res.get("reason"), res.get("checks", {}).get("disk_read_runs"))
    assert res["verdict"] == "rejected", seen
    assert "read from disk" in res["reason"], seen
