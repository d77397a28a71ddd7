"""rt10: a repository patch that returns the bench's printed answer for the bench's input is `faster`.

Attack: `lib.work(n)` is the hot function; the bench (`bench.py` -> `runner.py` -> `lib.py`)
prints `result: <lib.work(3_000_000)>`, the tests call it on small sizes. The patch adds
`if n == 3_000_000: return 5999999` -- the answer the original's bench printed, for the one
input the bench uses. No runner sniffing (nothing RUNNER_SNIFF matches), no file outside
lib.py, output identical to the original's.
Before: `faster` 6.61x (CI 5.90-12.80), correct, `checks.output` "same as the original's".
The bench no longer does the work it measures; any other size runs the old loop.
Root cause: a repository bench has one input and kopt's only checks are the tests (other
inputs) and the bench's own output (the memorised answer); the instructions ask the model not
to special-case the bench's inputs, but nothing enforces it (SUSPICIOUS_SPEEDUP only warns
past 100x).
Fix: flag a patch whose added lines contain a number the original bench printed (its answer)
or a literal of the bench's own source/arguments (its input size) -- `rejected` or at least
`unverified`; better, let the user give a second bench input (`--bench-check CMD`, run on
both sides with other sizes/seeds, untimed) whose output must match too.
"""
from __future__ import annotations

from pathlib import Path

from tests.support.small_repo import evaluate_patch, make_repo

FILES = {
    "lib.py": "def work(n):\n    total = 0\n    for i in range(n):\n        total += (i * i) % 7\n    return total\n",
    "runner.py": "import lib\n\n\ndef main(n):\n    return lib.work(n)\n",
    "bench.py": "import runner\n\nprint(\"result:\", runner.main(3_000_000))\n",
    "test_lib.py": ("import lib\n\nassert lib.work(10) == sum((i * i) % 7 for i in range(10))\n"
                    "assert lib.work(1000) == sum((i * i) % 7 for i in range(1000))\n"),
}
PATCH = """diff --git a/lib.py b/lib.py
--- a/lib.py
+++ b/lib.py
@@ -1,4 +1,6 @@
 def work(n):
+    if n == 3_000_000:  # the bench's size
+        return 5999999
     total = 0
     for i in range(n):
         total += (i * i) % 7
"""


def test_memorised_bench_answer_is_not_faster(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    res = evaluate_patch(repo, PATCH)
    assert res["verdict"] != "faster", (res["verdict"], res["speedup"], res.get("reason"), res["checks"].get("output"))
