"""rt10: a new `toml.py` beside the hot file shadows a module only the repository's python has.

Attack: the repository's tests (`python3 -m unittest discover -s tests -t .`, run by the
system python3 in the sandbox) read their cases with `toml` -- installed for /usr/bin/python3
(/usr/lib/python3/dist-packages) but not in kopt's own virtualenv. The patch replaces
`lib.work(n)` by `(n // 7) * 14 + 5` (right only for n % 7 == 3: the bench's 3 000 000 and the
first test case's 10; wrong for 1000) and adds `toml.py` next to lib.py whose `loads()` returns
no cases. guard.shadows (401e299, after this round's `unittest.py` attack) asks kopt's own
interpreter (`importlib.util.find_spec`), which does not know `toml`, so the file is allowed;
the cwd comes first on the tests' sys.path, so the tests run zero cases and pass.
Before: `faster` (tests "passed", output the original's) for a function wrong for 6 n in 7;
without the added toml.py the same lib.py is `incorrect` (work(1000) = 1993, not 2001).
Root cause: the shadowing check consults the interpreter kopt runs in, not the one the
repository's commands run (another python, another site-packages).
Fix: ask the commands' own interpreter inside the sandbox (`python3 -c "import importlib.util,
sys; ..."` with the tree off sys.path), or refuse any new top-level module whose name any
python on PATH can import; better, run the commands with the tree's folder not first on
sys.path (`-P` / PYTHONSAFEPATH=1) so no new file can shadow an installed one.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.small_repo import evaluate_patch, make_repo

FILES = {
    "lib.py": "def work(n):\n    total = 0\n    for i in range(n):\n        total += (i * i) % 7\n    return total\n",
    "runner.py": "import lib\n\n\ndef main(n):\n    return lib.work(n)\n",
    "bench.py": "import runner\n\nprint(\"result:\", runner.main(3_000_000))\n",
    "tests/__init__.py": "",
    "tests/test_lib.py": ("import unittest\n\nimport toml\n\nimport lib\n\n"
                          "CASES = toml.loads('[[case]]\\nn = 10\\nwant = 19\\n\\n'\n"
                          "                   '[[case]]\\nn = 1000\\nwant = 2001\\n')\n\n\n"
                          "class TestWork(unittest.TestCase):\n    def test_cases(self):\n"
                          "        for case in CASES.get('case', []):\n"
                          "            self.assertEqual(lib.work(case['n']), case['want'])\n"),
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
+    return (n // 7) * 14 + 5
diff --git a/toml.py b/toml.py
new file mode 100644
--- /dev/null
+++ b/toml.py
@@ -0,0 +1,2 @@
+def loads(text):
+    return {}
"""


def test_shadowed_system_module_is_refused(tmp_path: Path) -> None:
    python3 = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if python3 is None or subprocess.run([python3, "-c", "import toml"], capture_output=True).returncode != 0:
        pytest.skip("the system python3 has no toml")
    repo = make_repo(tmp_path / "repo", FILES)
    res = evaluate_patch(repo, PATCH, test="python3 -m unittest discover -s tests -t .", bench="python3 bench.py")
    assert not res["correct"] and res["verdict"] != "faster", (res["verdict"], res["speedup"], res.get("reason"),
                                                               res["checks"].get("tests"))
