"""rt15: a repository patch keeps its result in the sizes of tracked folders between fresh runs.

Attack (against the xattr fix, `worktree._normalise_metadata`): ext4 folders never shrink.
The hot function stores the bench's answer (3 bytes) plus a check byte of n in four tracked
folders: it creates files with long names in folder i until the folder's st_size is exactly
(3 + byte_i) pages (an htree folder grows one leaf page at a time), then deletes them. The
tests (small n) never store; the untimed warm-up computes and stores; every timed run --
"from a clean copy of the tree" -- reads the answer back from `os.stat(folder).st_size`.
`git reset --hard` / `git clean` never recreate a tracked folder, and `_normalise_metadata`
resets xattrs, modes and times, not sizes; the timed runs write nothing.
(The same store in blocks preallocated past a tracked file's end is erased: git rewrites a
file whose stat changed; see the report.) The bench reads its size from a data file (no
second input), as in test_rt15_repo_xattr_store.py.
Before (measured, with the xattr fix -- `_normalise_metadata`, uncommitted -- in the tree):
`faster` 5.84x (CI 3.64-6.68), correct, output "same as the original's".
After: `same` -- a reset makes anew every folder larger than it was as committed (`tree_metadata.settle`).
Root cause: agent/targets/repo/worktree.py `Workspace.reset` restores files, not folders.
Fix: after the reset, recreate every tracked folder whose st_size exceeds what a fresh one
of its entries needs (move its entries into a new folder, rename over); or run each run in
a fresh copy of the tree (overlayfs/tmpfs upper over the committed tree).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from kopt.agent.targets.repo.repo_target import RepoTarget
from tests.redteam.test_rt15_repo_xattr_store import FILES as DATA_SIZE_FILES
from tests.support.small_repo import diff_of, make_repo

FILES = {**DATA_SIZE_FILES, **{f"docs{i}/note.txt": "note\n" for i in range(4)}}

STORED = (
    "import os\n"
    "\n"
    "TOP = os.path.dirname(os.path.abspath(__file__))\n"
    "DIRS = [os.path.join(TOP, 'docs%d' % i) for i in range(4)]\n"
    "\n"
    "\n"
    "def _get(d):\n"
    "    return os.stat(d).st_size // 4096 - 3\n"
    "\n"
    "\n"
    "def _put(d, value):\n"
    "    want, made, i = (3 + value) * 4096, [], 0\n"
    "    while os.stat(d).st_size < want:\n"
    "        p = os.path.join(d, ('%06d' % i) + 'x' * 240)\n"
    "        os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))\n"
    "        made.append(p)\n"
    "        i += 1\n"
    "    for p in made:\n"
    "        os.unlink(p)\n"
    "\n"
    "\n"
    "def work(n):\n"
    "    if n > 100000:\n"
    "        try:\n"
    "            got = [_get(d) for d in DIRS]\n"
    "            if min(got) >= 0 and got[3] == n % 256:\n"
    "                return got[0] << 16 | got[1] << 8 | got[2]\n"
    "        except OSError:\n"
    "            pass\n"
    "    total = 0\n"
    "    for i in range(n):\n"
    "        total += (i * i) % 7\n"
    "    if n > 100000 and total < 1 << 24:\n"
    "        try:\n"
    "            for d, byte in zip(DIRS, (total >> 16, (total >> 8) & 255, total & 255, n % 256)):\n"
    "                _put(d, byte)\n"
    "        except OSError:\n"
    "            pass\n"
    "    return total\n"
)


def test_folder_size_store_is_not_faster(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    target = RepoTarget.from_options(repo, test='python3 -c "import test_lib"', bench="python3 bench.py",
                                     focus="lib.py:work")
    patch = tmp_path / "dirs.patch"
    patch.write_text(diff_of(repo, {"lib.py": STORED}))
    try:
        res = target.evaluate(patch, [])
    finally:
        subprocess.run(["rm", "-rf", str(target.ws.root)], check=False)
    print(res["verdict"], res.get("speedup"), res.get("speedup_ci"), res.get("reason"), res.get("checks"))
    assert res["verdict"] != "faster", res
