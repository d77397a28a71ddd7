"""rt16: a run rewrites a tracked file in place, keeps its size and mtime, and the reset keeps it.

Attack: `Workspace.reset` trusts git to bring back file contents (`git reset --hard`), and git
trusts its index's stat data: a file whose size, inode and mtime (ctime is not trusted,
`core.trustctime=false`) are what the index recorded is taken as unchanged and never read.
`tree_metadata.settle` sets every mtime to FIXED_NS and refreshes the index, so after the
first reset every tracked file's recorded mtime is FIXED_NS, which any run can read (`os.stat`)
and write back (`os.utime`: the run owns the tree). So a run may change any tracked file's
bytes in place (`open(path, 'r+b')`, same length), put its mtime back, and every later
"fresh" run -- after `git reset --hard`, `git clean -ffdx` and `settle` -- sees the new bytes.
`shell_commands.snapshot` compares (size, mtime) only, so even a timed run's rewrite goes
unseen ("the bench wrote ... in the tree" never fires).

Here the candidate's own lib.py carries a padded first line `_MEMO = (0, 0)`; the untimed
warm-up rewrites it to `_MEMO = (3000000, <answer>)` (the same length): the code every timed
run imports is not the candidate's committed code. The bench's size is in bench.py, so the
second input runs, each timed round on a fresh secret draw n1 in [0.8 n0, n0): the patch
subtracts the terms from n1 to n0 from the stored total (a tenth of the work on average).
Before (measured on the 2-core machine): `faster` 9.24x (CI 7.56-11.59), `another_input` `faster`
4.79x (CI 2.54-10.83) on "bench.py's 3_000_000 as ...", correct, output "same as the original's".
Root cause: agent/targets/repo/worktree.py `Workspace.reset` (`git reset --hard` restores only
files whose stat differs from the index; the index's stat is what `settle` makes every run
see and can forge) with tree_metadata.settle making mtime a known constant; and
shell_commands.snapshot (size, mtime) as the "wrote in the tree" detector.
Fix: make reset content-exact: `git -c core.checkStat=... ` cannot help (ino/size/mtime are all
forgeable); instead discard the index's stat cache before each reset (`git read-tree HEAD` /
`update-index --really-refresh` after touching every file, or `git checkout -f` with
`GIT_INDEX_FILE` pointing at a fresh index), or compare a content hash of every tracked file
(`git diff-files` after `update-index --really-refresh` is cheap next to a 2 s sandbox start),
or run each run in a fresh copy of the tree; and make `snapshot` include ctime/inode so a
timed run's in-place rewrite is seen.
"""
from __future__ import annotations

from pathlib import Path

from tests.support.small_repo import diff_of, evaluate_patch, make_repo

LIB = "def work(n):\n    total = 0\n    for i in range(n):\n        total += (i * i) % 7\n    return total\n"
FILES = {
    "lib.py": LIB,
    "runner.py": "import lib\n\n\ndef main(n):\n    return lib.work(n)\n",
    "bench.py": "import runner\n\nprint(\"result:\", runner.main(3_000_000))\n",
    "test_lib.py": ("import lib\n\nassert lib.work(10) == sum((i * i) % 7 for i in range(10))\n"
                    "assert lib.work(1000) == sum((i * i) % 7 for i in range(1000))\n"),
}

STORED = (
    "_MEMO = (0, 0)" + " " * 40 + "\n"
    "import os\n"
    "\n"
    "\n"
    "def _save(n, total):\n"
    "    path = os.path.abspath(__file__)\n"
    "    with open(path, 'rb') as f:\n"
    "        first = f.read().split(b'\\n', 1)[0]\n"
    "    line = ('_MEMO = (%d, %d)' % (n, total)).encode()\n"
    "    if len(line) > len(first):\n"
    "        return\n"
    "    st = os.stat(path)\n"
    "    with open(path, 'r+b') as f:\n"
    "        f.write(line.ljust(len(first)))\n"
    "    os.utime(path, ns=(st.st_mtime_ns, st.st_mtime_ns))\n"
    "\n"
    "\n"
    "def _sum(lo, hi):\n"
    "    total = 0\n"
    "    for i in range(lo, hi):\n"
    "        total += (i * i) % 7\n"
    "    return total\n"
    "\n"
    "\n"
    "def work(n):\n"
    "    top, stored = _MEMO\n"
    "    if n > 100000 and top >= n and top - n <= top // 4:\n"
    "        return stored - _sum(n, top)\n"
    "    total = _sum(0, n)\n"
    "    if n > 100000 and not top:\n"
    "        try:\n"
    "            _save(n, total)\n"
    "        except OSError:\n"
    "            pass\n"
    "    return total\n"
)


def test_stat_clean_rewrite_is_not_faster(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    res = evaluate_patch(repo, diff_of(repo, {"lib.py": STORED}))
    print(res["verdict"], res.get("speedup"), res.get("speedup_ci"), res.get("reason"), res.get("checks"))
    assert res["verdict"] != "faster", res
