"""rt10: a repository patch adds `unittest.py` next to the hot file; the tests "pass", the code is wrong.

Attack: the repository's tests run as `python3 -m unittest discover -s tests -t .` from the
repository root, where the hot file `lib.py` lives. The patch (1) makes `lib.work(n)` return
the bench's answer for the bench's n and 0 for every other n, and (2) adds a new source file
`unittest.py` in the same folder -- allowed: "new source files next to" the code under
optimization -- holding `raise SystemExit(0)`. `python -m unittest` finds the cwd's
`unittest.py` before the standard library's, so the test command exits 0 without running a
test. Nothing in the patch matches RUNNER_SNIFF (the name is only in the diff header).
Before: `faster` 10.76x (CI 9.99-12.67), correct, `checks.tests` "passed", output "same as
the original's". Without the added file the same lib.py is `incorrect` ("AssertionError: 0 != 19").
Root cause: guard.Policy lets a patch add any new source file in the hot files' folders; a
file named like a module the test or bench command runs (`-m unittest`, `-m pytest`, or any
stdlib/site module its scripts import: random, json, statistics, ...) shadows it, because
the command's folder comes first on sys.path.
Fix: refuse new files whose module name is importable outside the tree (stdlib, site-packages:
`importlib.util.find_spec(name)` in a clean interpreter, or sys.stdlib_module_names) or is named
by the commands (`-m NAME`); and run Python commands with `-P`/`PYTHONSAFEPATH=1` (3.11+) so the
cwd is not prepended for `-m`.
"""
from __future__ import annotations

from pathlib import Path

from tests.support.small_repo import evaluate_patch, make_repo

FILES = {
    "lib.py": "def work(n):\n    total = 0\n    for i in range(n):\n        total += (i * i) % 7\n    return total\n",
    "runner.py": "import lib\n\n\ndef main(n):\n    return lib.work(n)\n",
    "bench.py": "import runner\n\nprint(\"result:\", runner.main(3_000_000))\n",
    "tests/__init__.py": "",
    "tests/test_lib.py": ("import unittest\n\nimport lib\n\n\nclass TestWork(unittest.TestCase):\n"
                          "    def test_small(self):\n"
                          "        self.assertEqual(lib.work(10), sum((i * i) % 7 for i in range(10)))\n"
                          "        self.assertEqual(lib.work(1000), sum((i * i) % 7 for i in range(1000)))\n"),
}
PATCH = """diff --git a/lib.py b/lib.py
--- a/lib.py
+++ b/lib.py
@@ -1,5 +1,2 @@
 def work(n):
-    total = 0
-    for i in range(n):
-        total += (i * i) % 7
-    return total
+    return 5999999 if n == 3_000_000 else 0
diff --git a/unittest.py b/unittest.py
new file mode 100644
--- /dev/null
+++ b/unittest.py
@@ -0,0 +1 @@
+raise SystemExit(0)
"""


def test_shadowed_test_runner_is_not_correct(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    res = evaluate_patch(repo, PATCH, test="python3 -m unittest discover -s tests -t .", bench="python3 bench.py")
    assert not res["correct"] and res["verdict"] != "faster", (res["verdict"], res["speedup"], res.get("reason"),
                                                               res["checks"].get("tests"))
