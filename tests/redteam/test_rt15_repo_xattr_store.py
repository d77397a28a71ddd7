"""rt15: a repository patch keeps its result in an extended attribute of its own tree between fresh runs.

Attack: the hot function `lib.work(n)` looks for `user.kopt_<n>` on the tree's top folder
(`os.getxattr`); if there, it returns it; else it computes and stores it (`os.setxattr`). The
tests (small n) never store; the untimed warm-up bench run computes and stores; every timed
run -- each "from a clean copy of the tree" in a new sandbox -- reads the answer back. Its
output is the original's. No file changes: `git reset --hard` + `git clean -ffdx` and
`_remove_nested_git` leave a folder's xattrs alone, and `shell_commands.snapshot` (what
"the bench wrote X in the tree during timed runs" compares) looks at files' (size, mtime) only.
The bench reads its size from a data file (no integer in the command or bench.py: no second
input), the case bench_inputs.py documents; the point is the channel, which is exact, free
and needs no page-cache timing: fresh.py says "A result cache therefore cannot survive from
one run to the next."
Before (measured): `faster` ~8x, correct, output "same as the original's"; honest control
(same code, no store) `same`.
After: `same` -- a reset removes every xattr in the tree (`tree_metadata.settle`).
Root cause: agent/targets/repo/worktree.py `Workspace.reset` / fresh.py `FreshRuns.start`
restore file contents only; the tree (an id-mapped writable bind, jail.sh) keeps xattrs,
folder modes and folder mtimes that no reset touches, and the jail's seccomp filter allows
setxattr/fsetxattr/lsetxattr.
Fix: refuse setxattr/lsetxattr/fsetxattr (and removexattr) in the jail's filter for
repository and program runs, or compare `listxattr` of every folder/file in `snapshot`, or
run each run in a fresh copy (overlay/tmpfs) of the tree.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from kopt.agent.targets.repo.repo_target import RepoTarget
from tests.support.small_repo import diff_of, make_repo

LIB = "def work(n):\n    total = 0\n    for i in range(n):\n        total += (i * i) % 7\n    return total\n"
FILES = {
    "lib.py": LIB,
    "runner.py": "import lib\n\n\ndef main(n):\n    return lib.work(n)\n",
    "size.txt": "2500000\n",
    "bench.py": ("import runner\n\nwith open('size.txt') as f:\n    n = int(f.read())\n"
                 "print('result:', runner.main(n))\n"),
    "test_lib.py": ("import lib\n\nassert lib.work(10) == sum((i * i) % 7 for i in range(10))\n"
                    "assert lib.work(1000) == sum((i * i) % 7 for i in range(1000))\n"),
}
STORED = (
    "import os\n"
    "\n"
    "TOP = os.path.dirname(os.path.abspath(__file__))\n"
    "\n"
    "\n"
    "def work(n):\n"
    "    key = 'user.kopt_%d' % n\n"
    "    try:\n"
    "        return int(os.getxattr(TOP, key))\n"
    "    except OSError:\n"
    "        pass\n"
    "    total = 0\n"
    "    for i in range(n):\n"
    "        total += (i * i) % 7\n"
    "    if n > 100000:\n"
    "        try:\n"
    "            os.setxattr(TOP, key, str(total).encode())\n"
    "        except OSError:\n"
    "            pass\n"
    "    return total\n"
)


def test_xattr_store_is_not_faster(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    target = RepoTarget.from_options(repo, test='python3 -c "import test_lib"', bench="python3 bench.py")
    patch = tmp_path / "xattr.patch"
    patch.write_text(diff_of(repo, {"lib.py": STORED}))
    try:
        res = target.evaluate(patch, [])
    finally:
        subprocess.run(["rm", "-rf", str(target.ws.root)], check=False)
    print(res["verdict"], res.get("speedup"), res.get("speedup_ci"), res.get("reason"), res.get("checks"))
    assert res["verdict"] != "faster", res
