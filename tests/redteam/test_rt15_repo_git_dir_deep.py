"""rt15: a run that replaces its tree's `.git` link with 1500 nested folders crashes kopt.

Attack: the hot function, when the bench (or the tests) import it, removes the tree's `.git`
file (the tree is the run's one writable host folder) and makes a folder `.git` holding 1500
nested folders (mkdir + chdir, one level at a time).
Before (measured): `RepoTarget.evaluate` raised `RecursionError: maximum recursion depth
exceeded` out of `Workspace.reset` -> `shutil.rmtree(link)` (Python 3.11's rmtree recurses
once per level), called by `FreshRuns.start` / `FreshRuns.close` before the next run;
`FreshRuns.close` catches only GitError. Round 10 made `snapshot` and `_remove_nested_git`
iterative (`fs_walk`), but the top-level `.git` folder is still removed with shutil.rmtree.
After: a verdict -- `Workspace.reset` removes a `.git` folder with `fs_walk.remove_tree` (rm -rf).
Root cause: agent/targets/repo/worktree.py `Workspace.reset` (`shutil.rmtree(link)`).
Fix: `fs_walk.remove_tree(link)` there (rm -rf), as everywhere else a candidate chose the shape.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from kopt.agent.targets.repo.repo_target import RepoTarget
from tests.support.small_repo import make_repo

FILES = {
    "lib.py": "def work(n):\n    total = 0\n    for i in range(n):\n        total += (i * i) % 7\n    return total\n",
    "runner.py": "import lib\n\n\ndef main(n):\n    return lib.work(n)\n",
    "bench.py": "import runner\n\nprint(\"result:\", runner.main(300_000))\n",
    "test_lib.py": "import lib\n\nassert lib.work(10) == sum((i * i) % 7 for i in range(10))\n",
}
PATCH = """diff --git a/lib.py b/lib.py
--- a/lib.py
+++ b/lib.py
@@ -1,4 +1,17 @@
 def work(n):
+    import os
+
+    here = os.getcwd()
+    top = os.path.dirname(os.path.abspath(__file__))
+    git = os.path.join(top, ".git")
+    if not os.path.isdir(git):
+        os.unlink(git)
+        os.mkdir(git)
+        os.chdir(git)
+        for _ in range(1500):  # one level at a time
+            os.mkdir("d")
+            os.chdir("d")
+        os.chdir(here)
     total = 0
     for i in range(n):
         total += (i * i) % 7
"""


def test_deep_git_folder_is_a_verdict(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    target = RepoTarget.from_options(repo, test='python3 -c "import test_lib"', bench="python3 bench.py")
    patch = tmp_path / "deep.patch"
    patch.write_text(PATCH)
    try:
        res = target.evaluate(patch, [])
    finally:  # what the crash left
        subprocess.run(["rm", "-rf", str(tmp_path), str(target.ws.root)], check=False)
    assert res["verdict"] in ("slower", "same", "rejected", "runtime_error", "incorrect"), res
