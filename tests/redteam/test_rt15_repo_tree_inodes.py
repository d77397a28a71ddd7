"""rt15: a repository run that makes more than 20,000 files in its tree gets its whole tree deleted: kopt crashes.

Attack: the hot function, when the bench runs it, creates 25,000 empty files in the tree
(50 folders x 500), then computes honestly.
Before (measured): `RepoTarget.evaluate` raised `FileNotFoundError: .../trees/c-<key>/.git`
out of `Workspace.reset` (`FreshRuns.close` in `repo_bench.measure`'s finally): when the
run's worker was killed, `sandboxes/local.py` `Worker.kill` ran `cache_problem` on its
`cache_dir` -- for a `TreeShell` that is the candidate's work tree -- found more than
`MAX_CACHE_ENTRIES` (20,000, a cap meant for KernelBench build folders) and `rm -rf`ed the
whole tree, its `.git` link included. (With 150,000 files the same run also hit the 30 s
bench timeout first; the tree was deleted all the same.)
The same deletion hits an honest repository of more than 20,000 files (test_rt15_repo_big_tree.py).
Also: while a run goes on nothing counts entries (`TreeShell._wait` compares MB only), so one
run can make ~16M empty files within the 1024 MB growth cap (~16 B of folder entry each) and
exhaust the host file system's 16.7M inodes (kopt's cache, run dir and /tmp share it; not run
here, the machine is shared).
After: not a crash nor a quiet `same`: a run may add at most 100,000 entries (KOPT_TREE_GROWTH_ENTRIES),
checked after the run too, and a tree is never discarded by the build-folder rule.
Root cause: sandboxes/local.py `Worker.kill` (`cache_problem` + `fs_walk.remove_tree(self.cache_dir)`
applied to a repository tree, TreeShell passes `cache_dir=str(self.tree)`), and
agent/targets/repo/shell_commands.py `TreeShell._wait` (entry count dropped).
Fix: never remove a `TreeShell`'s tree in `Worker.kill` (a flag on Limits: the cache dir is a
work tree, not a build folder); cap the entries a run adds to its tree in `_wait` (growth
over the entries at the start, e.g. 200,000): past it `runtime_error`, "the run made N files".
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
    "bench.py": "import runner\n\nprint('result:', runner.main(200_000))\n",
    "test_lib.py": "import lib\n\nassert lib.work(10) == sum((i * i) % 7 for i in range(10))\n",
}
MANY = (
    "import os\n"
    "\n"
    "\n"
    "def work(n):\n"
    "    if n > 1000:\n"
    "        top = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'spray')\n"
    "        os.makedirs(top, exist_ok=True)\n"
    "        for d in range(50):\n"
    "            sub = os.path.join(top, str(d))\n"
    "            os.mkdir(sub)\n"
    "            for f in range(500):\n"
    "                os.close(os.open(os.path.join(sub, str(f)), os.O_CREAT | os.O_WRONLY, 0o644))\n"
    "    total = 0\n"
    "    for i in range(n):\n"
    "        total += (i * i) % 7\n"
    "    return total\n"
)


def test_many_files_are_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    target = RepoTarget.from_options(repo, test='python3 -c "import test_lib"', bench="python3 bench.py")
    patch = tmp_path / "many.patch"
    patch.write_text(diff_of(repo, {"lib.py": MANY}))
    try:
        res = target.evaluate(patch, [])
    finally:
        subprocess.run(["rm", "-rf", str(target.ws.root)], check=False)
    print(res["verdict"], res.get("speedup"), res.get("reason"), res.get("checks"))
    assert res["verdict"] in ("runtime_error", "rejected", "timeout"), res
