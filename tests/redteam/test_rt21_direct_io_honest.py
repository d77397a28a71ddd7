"""rt21: an honest candidate that reads its data with O_DIRECT is rejected as a page-cache store.

False positive (of bb71bed's disk-read rule): the repository's `total()` sums a data file in
the tree. The candidate reads it with O_DIRECT (a common change for big sequential reads, so
they do not pollute the page cache) and computes the same answer. O_DIRECT never uses the
page cache, so every timed run reads blocks from disk (ru_inblock > 0) where the original's,
served from the cache, read none: `rejected`, "state kept between runs in the page cache",
though nothing is kept anywhere.
Outcome decided (session 16, after red team 22): `rejected`, with a reason that says O_DIRECT
reads count. Letting them through was tried and broken at once: an O_DIRECT read's time still
tells whether the block was read lately from a cache below this kernel (the VM's host), so a
store reads its answer from there (`test_rt22_direct_io_store.py`). An honest candidate reads
through the page cache instead; the reason says so.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from benchmarks.studies.repo_targets import commit_all
from kopt.agent.targets.repo.repo_target import RepoTarget
from tests.redteam.test_repo_attacks import patch_of

PY = sys.executable
pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git missing")

ORIGINAL = ("import os\nDATA = os.path.join(os.path.dirname(__file__), 'data.bin')\n\n\n"
            "def total():\n    with open(DATA, 'rb') as f:\n        return sum(f.read())\n")
DIRECT = ("import mmap, os\nDATA = os.path.join(os.path.dirname(__file__), 'data.bin')\n\n\n"
          "def total():\n    fd = os.open(DATA, os.O_RDONLY | os.O_DIRECT)\n"
          "    size = os.fstat(fd).st_size\n    buf = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT needs\n"
          "    try:\n        n = os.readv(fd, [buf])\n    finally:\n        os.close(fd)\n"
          "    return sum(buf[:n])\n")


def _repo(root: Path) -> Path:
    (root / "lib").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "lib" / "__init__.py").write_text("")
    (root / "lib" / "work.py").write_text(ORIGINAL)
    (root / "lib" / "data.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    (root / "tests" / "test_work.py").write_text(
        "from lib.work import total\n\n\ndef test_total():\n    assert total() == 4096 * sum(range(256))\n")
    (root / "bench.py").write_text("from lib.work import total\nfor _ in range(20):\n    t = total()\nprint(t)\n")
    return commit_all(root)


def test_an_o_direct_reader_is_rejected_with_a_reason_that_says_why(tmp_path):
    repo = _repo(tmp_path / "user")
    patch = patch_of(repo, tmp_path, {"lib/work.py": DIRECT})
    t = RepoTarget.from_options(repo, test=f"{PY} -m pytest -q -p no:cacheprovider tests",
                                bench=f"{PY} bench.py", focus="lib/work.py:total")
    t.min_rounds, t.max_rounds, t.timing_budget_s = 4, 4, 5.0
    res = t.evaluate(patch, [str(tmp_path / "run")])
    seen = (res["verdict"], res.get("reason"), res.get("checks", {}).get("disk_read_runs"))
    assert res["verdict"] == "rejected", seen
    assert "O_DIRECT" in res["reason"], seen
