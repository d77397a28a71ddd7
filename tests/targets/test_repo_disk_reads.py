"""A repository candidate whose timed runs read pages the host had not cached is `rejected`.

The page cache outlives every run, read-only tree or not: a warm-up could store a result (or,
for a bench whose answer updates incrementally, partial results) in which pages of a large
host file it read, and every timed run read it back by timing page faults. The jail refuses
the calls that ask the cache without reading, so such a reader reads from disk on every run:
counted from outside its processes (`repo_runner`: the waited-for rusage of everything the
command started, a `setsid` child included), most of its timed runs against none of the
original's. Real sandboxed runs on a real repository; the reader here reads fresh random
uncached pages of a large /usr file on every run (what a store's reader does) and computes
the honest answer."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from kopt.agent.targets.repo.repo_target import RepoTarget
from tests.redteam._work_repo import WORK, work_repo
from tests.redteam.test_repo_attacks import patch_of
from tests.redteam.test_rt10_kb_page_cache_timing import _uncached_pages

PY = sys.executable
pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git missing")
BENCH = "from lib.work import total\nprint(total(300000))\n"

READER = """import mmap, os, random


def _read_uncached_pages():
    # what a page-cache store's reader does: touch pages of a large host file; those the
    # host had not cached are read from disk
    with open({path!r}, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        m.madvise(mmap.MADV_RANDOM)
        for page in random.sample({pages!r}, 32):
            m[page * 4096]
        m.close()


{setsid}
"""


def _big_uncached_file() -> tuple[str, list[int]] | None:
    for root in ("/usr/lib", "/usr/share", "/usr"):
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = Path(dirpath, name)
                try:
                    if path.is_symlink() or path.stat().st_size < 16 << 20:
                        continue
                    free = _uncached_pages(str(path))
                except OSError:
                    continue
                pages = [i for i in range(0, len(free), 4) if free[i]]
                if len(pages) >= 1000:
                    return str(path), pages[:4000]
    return None


def _evaluate(tmp_path: Path, lib: str, bench: str = BENCH, extra: dict[str, str] | None = None) -> dict:
    repo = work_repo(tmp_path / "user", bench, extra)
    patch = patch_of(repo, tmp_path, {"lib/work.py": lib})
    t = RepoTarget.from_options(repo, test=f"{PY} -m pytest -q -p no:cacheprovider tests",
                                bench=f"{PY} bench.py", focus="lib/work.py:total")
    t.min_rounds, t.max_rounds, t.timing_budget_s = 4, 4, 5.0
    return t.evaluate(patch, [str(tmp_path / "run")])


@pytest.mark.parametrize("setsid", [False, True], ids=["in_the_bench", "in_a_setsid_child_left_running"])
def test_timed_runs_reading_uncached_host_pages_are_rejected(tmp_path, setsid):
    found = _big_uncached_file()
    if found is None:
        pytest.skip("no large host file with enough uncached pages under /usr")
    path, pages = found
    if setsid:  # the reading done by a child in a session of its own, which never exits
        call = ("import time\nif os.fork() == 0:\n    os.setsid()\n    _read_uncached_pages()\n"
                "    time.sleep(600)\nelse:\n    time.sleep(0.5)\n")
    else:
        call = "_read_uncached_pages()\n"
    lib = READER.format(path=path, pages=pages, setsid=call) + WORK
    res = _evaluate(tmp_path, lib)
    assert res["verdict"] == "rejected", res
    assert "read from disk" in res["reason"], res
    # the original may read in one run: CI once saw 1 of 4 (a busy host evicting the interpreter's
    # own files between runs); the candidate still read in all of them
    assert res["checks"]["disk_read_runs"]["ref"] <= 1, res["checks"]


def test_an_honest_candidate_reads_nothing_from_disk(tmp_path):
    fast = "def total(n):\n    return sum((i * i) % 7 for i in range(n))\n"
    res = _evaluate(tmp_path, fast)
    assert res["verdict"] != "rejected", res
    assert res["checks"]["disk_read_runs"]["new"] <= 1, res["checks"]


def test_an_honest_candidate_writing_files_reads_nothing_from_disk(tmp_path):
    """The pages a run writes enter the page cache too (a 6 MiB scratch file and 200 small ones
    in its tree, removed before it ends, as a timed run must leave its tree; 2 MiB in /tmp):
    they are what the run wrote, not reads."""
    writer = ("import os, shutil, tempfile\n\n\ndef total(n):\n"
              "    here = os.path.join(os.path.dirname(__file__), 'scratch')\n"
              "    os.makedirs(here, exist_ok=True)\n"
              "    with open(os.path.join(here, 'big.bin'), 'wb') as f:\n"
              "        f.write(os.urandom(6 << 20))\n"
              "        f.flush()\n"
              "        os.fsync(f.fileno())\n"
              "    for i in range(200):\n"
              "        with open(os.path.join(here, str(i)), 'w') as f:\n"
              "            f.write('x' * 100)\n"
              "    with tempfile.TemporaryFile() as f:\n"
              "        f.write(os.urandom(2 << 20))\n"
              "    shutil.rmtree(here)\n"
              "    return sum((i * i) % 7 for i in range(n))\n")
    res = _evaluate(tmp_path, writer)
    # not "most runs": a few pages can show in some runs (the file system's own block and inode
    # bitmaps, brought in by the allocation; seen in 2 of 4 runs once on a loaded host)
    assert res["verdict"] != "rejected", res
    assert res["checks"]["disk_read_runs"]["new"] <= 2, res["checks"]
