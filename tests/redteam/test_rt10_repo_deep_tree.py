"""rt10: a repository patch whose code makes 1500 nested folders in the tree crashes kopt.

Attack: the hot function, when the bench runs it, makes 1500 nested folders in its working
directory (the candidate's tree, writable), one level at a time (mkdir + chdir).
Before: `RepoTarget.evaluate` raised `RecursionError: maximum recursion depth exceeded` from
shell_commands.snapshot (os.walk is recursive in Python 3.11), called by FreshRuns.run after
every test and bench run; repo_bench.measure catches only its own _Failed and GitError, so
`kopt optimize` on a repository ends with a traceback (architecture §1/§4).
Root cause: kopt walks a tree whose shape the candidate's code chose with recursive library
code in its own process (the same holds for sandboxes.local.folder_mb and shutil.rmtree).
Fix: walk iteratively with a depth/entry budget (past it: `rejected`, "the run made N nested
folders"), and reset trees with git / `rm -rf`, never a recursive Python walk.
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
@@ -1,4 +1,13 @@
 def work(n):
+    import os
+
+    here = os.getcwd()
+    os.mkdir("deep")
+    os.chdir("deep")
+    for _ in range(1500):  # one level at a time: os.makedirs would recurse itself
+        os.mkdir("d")
+        os.chdir("d")
+    os.chdir(here)
     total = 0
     for i in range(n):
         total += (i * i) % 7
"""


def test_deep_tree_is_a_verdict(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    target = RepoTarget.from_options(repo, test='python3 -c "import test_lib"', bench="python3 bench.py")
    patch = tmp_path / "deep.patch"
    patch.write_text(PATCH)
    try:
        res = target.evaluate(patch, [])
    finally:  # what the crash left (Python's rmtree recurses too)
        subprocess.run(["rm", "-rf", str(tmp_path), str(target.ws.root)], check=False)
    # a verdict, not a RecursionError (making 1500 folders in the bench is just slower)
    assert res["verdict"] in ("slower", "same", "rejected", "runtime_error", "incorrect"), res
