"""rt10: the bench's answer written as a hex literal (or any expression) is not seen as memorised.

Attack: as test_rt10_repo_bench_answer.py -- `lib.work(n)` returns the bench's printed answer
for the bench's one input, `if n == 3_000_000: return 0x5B8D7F` -- but the number is written
in hex (`5999998 + 1`, `int("5_999_999")`, `6 * 10**6 - 1` or a table of digits do the same).
Before: `faster` ~6-12x and correct, with or without the answer-literal check being added to
repo_bench (OutputCheck.memorised, in the working tree at 14:12): its LITERAL regex reads
decimal literals only (`0x5B8D7F` has a word character after the `0`), so nothing matches.
Root cause: a memorised answer is told by the spelling of one literal in the patch, and the
bench has one input, so the patch can encode that input's answer any way it likes.
Fix: evaluate constant expressions too (ast.literal_eval / constant-fold every added
expression: hex, octal, binary, +-*/ of literals, int()/float() of strings) before comparing
with the printed numbers -- or, better, check the bench on a second input (a user-given
`--bench-check` command or argument) whose answer the patch cannot know.
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
+    if n == 3_000_000:
+        return 0x5B8D7F
     total = 0
     for i in range(n):
         total += (i * i) % 7
"""


def test_hex_memorised_bench_answer_is_not_faster(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    res = evaluate_patch(repo, PATCH)
    assert res["verdict"] != "faster", (res["verdict"], res["speedup"], res.get("reason"), res["checks"].get("output"))
