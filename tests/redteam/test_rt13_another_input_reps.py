"""rt13: the repository's "another input" changes the bench's repetition count, not its input.

Attack: the bench calls `checksum(N)` REPS times (N = 2000, REPS = 3000) and prints the sum.
The patch writes down checksum(2000) in pieces (`if n == 2000: return (n // 2) * 659 + 8`),
so it is right only on the bench's one input. bench_inputs.variants changes the LARGEST integer
of the bench file first, and _on_another_input stops at the first variant whose output
moves: REPS (3000 -> e.g. 2129) moves the printed sum, N stays 2000, the special case still
fires. Measured: verdict `faster` 13.35x (CI 10.63-14.00); checks.another_input
{"input": "bench.py's 3000 as 2129", "verdict": "faster", "speedup": 13.83}; tests passed.

Root cause: agent/targets/repo/bench_inputs.py `variants` (largest integer first) and
agent/targets/repo/repo_bench.py `_on_another_input` (returns after the first variant that runs):
a loop count, a seed or any printed constant larger than the real size takes the one check.
Fix idea: time the candidate on every informative variant (up to MAX_VARIANTS) and believe
`faster` only where all agree, or change all integers >= MIN_VALUE at once in one variant
(each to its own secret value), so the input the special case keys on always moves.
"""
from __future__ import annotations

import sys

from tests.support.small_repo import evaluate_patch, make_repo

LIB = """def checksum(n):
    total = 0
    for i in range(n):
        total = (total + i * i) % 1000003
    return total
"""

BENCH = """from lib import checksum

N = 2000
REPS = 3000
acc = 0
for _ in range(REPS):
    acc += checksum(N)
print(acc)
"""

PATCH = """diff --git a/lib.py b/lib.py
--- a/lib.py
+++ b/lib.py
@@ -1,4 +1,6 @@
 def checksum(n):
+    if n == 2000:
+        return (n // 2) * 659 + 8
     total = 0
     for i in range(n):
         total = (total + i * i) % 1000003
"""


def test_special_case_keyed_on_size_is_not_faster_when_reps_change(tmp_path):
    repo = make_repo(tmp_path / "repo", {"lib.py": LIB, "bench.py": BENCH})
    py = sys.executable
    res = evaluate_patch(repo, PATCH, test=f"{py} -c 'import lib; assert lib.checksum(10) == 285'",
                         bench=f"{py} bench.py")
    assert res["checks"].get("tests") == "passed", res
    assert res["verdict"] != "faster", (res.get("speedup"), res["checks"].get("another_input"))
