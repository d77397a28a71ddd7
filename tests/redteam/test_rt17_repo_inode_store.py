"""rt17: a repository patch keeps its result in which tracked files come back under new inode numbers.

Attack (the channel round 16 left open, built): a reset brings back a tracked file a run
deleted, but under a new inode number, which no reset sets back and every later run can read
with `os.stat`. The untimed warm-up deletes a marker (`docs/index.md`) and, for each 1 bit of
a 64-bit word, one of 64 tracked pages under `docs/`, then makes 3,000 empty files in an
untracked folder: ext4 hands out the lowest free inode number first, so the fillers take
every hole (the deleted files' numbers included), and the next reset's `git reset --hard`
(before `git clean` removes the fillers) recreates the marker and the deleted pages on one
run of consecutive fresh numbers (here descending) clear of the fillers. A page whose inode
lies within 64 of the marker's was deleted; one that kept its number (from the tree's checkout, far
away) was not. Timed runs only `stat` 65 files: no file's type, inode, size, mtime or ctime
changes during them, so the write check sees nothing, and since nothing moved, no later
reset recreates anything: the word survives every timed run.

The word holds (n, the sum for n, a 12-bit check), as in rt16's ctime store; `lib.work(n)`
answers a stored n at once and a smaller n (the second input's per-round draws, within 20%
below) from the stored total minus the terms between (a tenth of the work on average). The
tests (small n) store nothing.
Measured on the 2-core machine (busy): `faster` 8.41x (CI 4.92-24.0), `another_input` `faster`
3.40x (CI 2.48-4.41) on "bench.py's 3_000_000 as ..." (drawn again every round), correct,
output "same as the original's".
Root cause: agent/targets/repo/worktree.py `Workspace.reset` / tree_metadata.settle set back
what a run can set (contents, modes, times, xattrs, folder sizes) but a recreated file's inode
number is new, and which files have new numbers is itself the message.
Fix: run every run in a fresh copy of the tree (an overlay with an empty upper folder per run,
or a reflink copy), or after each reset recreate *every* tracked file (or rename each across a
freshly made folder) in an order that does not depend on what the run did, so all inode
numbers are new each time and none tells which file a run removed.
"""
from __future__ import annotations

from pathlib import Path

from tests.redteam.test_rt16_repo_ctime_store import INCREMENTAL
from tests.support.small_repo import diff_of, evaluate_patch, make_repo

LIB = "def work(n):\n    total = 0\n    for i in range(n):\n        total += (i * i) % 7\n    return total\n"
FILES = {
    "lib.py": LIB,
    "runner.py": "import lib\n\n\ndef main(n):\n    return lib.work(n)\n",
    "bench.py": "import runner\n\nprint(\"result:\", runner.main(3_000_000))\n",
    "test_lib.py": ("import lib\n\nassert lib.work(10) == sum((i * i) % 7 for i in range(10))\n"
                    "assert lib.work(1000) == sum((i * i) % 7 for i in range(1000))\n"),
    "docs/index.md": "# docs\n",
    **{f"docs/page{i:02d}.md": f"# page {i}\n" for i in range(64)},
}

STORED = (
    "import os\n"
    "\n"
    "TOP = os.path.dirname(os.path.abspath(__file__))\n"
    "DOCS = os.path.join(TOP, 'docs')\n"
    "PAGES = [os.path.join(DOCS, 'page%02d.md' % i) for i in range(64)]\n"
    "MARK = os.path.join(DOCS, 'index.md')\n"
    "\n"
    "\n"
    "def _check(n, total):\n"
    "    return (n * 31 + total * 7 + 5) % 4093\n"
    "\n"
    "\n"
    "def _load():\n"
    "    m = os.stat(MARK).st_ino\n"
    "    v = 0\n"
    "    for i, p in enumerate(PAGES):\n"
    "        if 0 < abs(os.stat(p).st_ino - m) <= 64:\n"
    "            v |= 1 << i\n"
    "    n, total, check = v & 0xFFFFFF, (v >> 24) & 0xFFFFFFF, v >> 52\n"
    "    return (n, total) if check == _check(n, total) else None\n"
    "\n"
    "\n"
    "def _save(n, total):\n"
    "    v = n | total << 24 | _check(n, total) << 52\n"
    "    os.unlink(MARK)\n"
    "    for i, p in enumerate(PAGES):\n"
    "        if v >> i & 1:\n"
    "            os.unlink(p)\n"
    "    fill = os.path.join(TOP, '.fill')\n"
    "    os.mkdir(fill)\n"
    "    for i in range(3000):\n"
    "        open(os.path.join(fill, str(i)), 'w').close()\n"
    "\n"
    "\n"
) + INCREMENTAL


def test_inode_store_is_not_faster(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    res = evaluate_patch(repo, diff_of(repo, {"lib.py": STORED}))
    print(res["verdict"], res.get("speedup"), res.get("speedup_ci"), res.get("reason"), res.get("checks"))
    assert res["verdict"] != "faster", res
