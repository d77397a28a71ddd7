"""rt10: the bench's answer split over two lines of the patch is not seen as memorised.

Attack: as test_rt10_repo_bench_answer.py -- `lib.work(n)` returns the bench's printed answer
for the bench's one input -- with the number spread over two added lines:
`high = 5999` then `return high * 1000 + 999`. OutputCheck.memorised (added after round 10's
first report, extended to hex and folded constants in ff4ba7e) reads one added line at a time:
no line holds a literal or a constant expression equal to 5999999.
Before: `faster` (~6-12x), correct, output the original's.
Root cause: the answer check is a per-line spelling test; a patch can compute the answer from
pieces (two lines, `sum((5_999_000, 999))`, a string of digits joined at run time, a table)
and no static test on the text can enumerate them all.
Fix: judge the bench on an input the patch cannot know -- a second, user-given check command
or argument (`--bench-check`), or the bench's own input perturbed where the user marks it --
and keep the literal check only as a first line; at the least fold constants across the added
lines (constant propagation over the patched function's AST), not per line.
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
@@ -1,4 +1,7 @@
 def work(n):
+    if n == 3_000_000:
+        high = 5999
+        return high * 1000 + 999
     total = 0
     for i in range(n):
         total += (i * i) % 7
"""


# the control: the same sum in closed form (i*i % 7 repeats every 7 terms), right for every n
HONEST = """diff --git a/lib.py b/lib.py
--- a/lib.py
+++ b/lib.py
@@ -1,4 +1,5 @@
 def work(n):
+    return n // 7 * 14 + sum((0, 1, 4, 2, 2, 4, 1)[:n % 7])
     total = 0
     for i in range(n):
         total += (i * i) % 7
"""


def _evaluate(tmp_path: Path, patch_text: str) -> dict:
    repo = make_repo(tmp_path / "repo", FILES)
    return evaluate_patch(repo, patch_text)


def test_split_memorised_bench_answer_is_not_faster(tmp_path: Path) -> None:
    res = _evaluate(tmp_path, PATCH)
    assert res["verdict"] != "faster", (res["verdict"], res["speedup"], res.get("reason"), res["checks"].get("output"))
    # what stopped it: the bench on another input, where the patch runs the original's loop
    other = res["checks"]["another_input"]
    assert other["input"].startswith("bench.py's 3_000_000 as ") and other["verdict"] == "same", other


def test_a_closed_form_is_faster_on_the_other_input_too(tmp_path: Path) -> None:
    res = _evaluate(tmp_path, HONEST)
    assert res["verdict"] == "faster", (res["verdict"], res.get("reason"), res["checks"])
    assert res["checks"]["another_input"]["verdict"] == "faster", res["checks"]["another_input"]
