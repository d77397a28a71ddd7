"""rt15: a repository patch keeps its result in the access time of a tracked symlink between fresh runs.

Attack (against the xattr fix, `worktree._normalise_metadata`): the repository tracks a
symlink (`latest -> size.txt`). The hot function stores the bench's answer and n in the
symlink's own atime (`os.utime(link, ns=(answer << 32 | n, mtime), follow_symlinks=False)`,
its mtime left as it was): git's index holds no atime (no stat change, nothing rewritten),
and `_normalise_metadata` skips symlinks (`if stat.S_ISLNK(...): continue`). The tests never
store; the untimed warm-up computes and stores; every timed run reads it back with `os.lstat`.
The bench reads its size from a data file (no second input), as in test_rt15_repo_xattr_store.py.
Before (measured, with the xattr fix -- `_normalise_metadata`, uncommitted -- in the tree):
`faster` 5.60x (CI 2.75-9.36), correct, output "same as the original's".
After: `same` -- a reset sets every time in the tree, symlinks' too, to a fixed value.
Root cause: agent/targets/repo/worktree.py `_normalise_metadata` (symlinks skipped).
Fix: `os.utime(path, ns=(FIXED_NS, FIXED_NS), follow_symlinks=False)` for symlinks too (and
the tree's folders' sizes: test_rt15_repo_folder_size_store.py).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from benchmarks.studies.repo_targets import commit_all
from kopt.agent.targets.repo.repo_target import RepoTarget
from tests.redteam.test_rt15_repo_xattr_store import FILES
from tests.support.small_repo import diff_of

STORED = (
    "import os\n"
    "\n"
    "LINK = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'latest')\n"
    "\n"
    "\n"
    "def work(n):\n"
    "    if n > 100000:\n"
    "        try:\n"
    "            at = os.lstat(LINK).st_atime_ns\n"
    "            if at & 0xFFFFFFFF == n:\n"
    "                return at >> 32\n"
    "        except OSError:\n"
    "            pass\n"
    "    total = 0\n"
    "    for i in range(n):\n"
    "        total += (i * i) % 7\n"
    "    if n > 100000 and total < 1 << 30:\n"
    "        try:\n"
    "            os.utime(LINK, ns=(total << 32 | n, os.lstat(LINK).st_mtime_ns), follow_symlinks=False)\n"
    "        except OSError:\n"
    "            pass\n"
    "    return total\n"
)


def test_symlink_atime_store_is_not_faster(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    for name, text in FILES.items():
        (root / name).write_text(text)
    os.symlink("size.txt", root / "latest")
    repo = commit_all(root)
    target = RepoTarget.from_options(repo, test='python3 -c "import test_lib"', bench="python3 bench.py",
                                     focus="lib.py:work")
    patch = tmp_path / "link.patch"
    patch.write_text(diff_of(repo, {"lib.py": STORED}))
    try:
        res = target.evaluate(patch, [])
    finally:
        subprocess.run(["rm", "-rf", str(target.ws.root)], check=False)
    print(res["verdict"], res.get("speedup"), res.get("speedup_ci"), res.get("reason"), res.get("checks"))
    assert res["verdict"] != "faster", res
