"""rt16: a bench that prints its own timing as an integer gets no output check, and a wrong answer is `faster`.

Attack: the bench prints its answer and `took <microseconds> us` (an integer: a common way to
print a time). `outputs.OutputCheck.learn` masks only *decimal* numbers that vary between the
original's runs (FLOAT needs a `.` or an exponent); an integer that varies makes the rest of
the output differ, so the whole check is switched off (`off = True`, "not checked: the
original's output varies between its runs"). With the check off nothing compares the
candidate's answer -- on the bench's input (`_check_outputs`), in the memorised-answer check
(`answers()` is empty) or on the second input (`_check_pair`: `against` copies `off`) -- and
`faster` stands, where a bench that prints nothing but its metric gets `unverified`
(`expect.empty`). The patch returns a rough estimate (`2 * n`) for large n, right for the tests'
small n; no runner sniffing, no number the bench printed.
Before (measured on the 2-core machine): `faster` 9.21x (CI 8.92-9.90), `another_input` `faster`
7.85x, checks.output "not checked: the original's output varies between its runs".
Root cause: agent/targets/repo/outputs.py `OutputCheck.learn` (only FLOAT tokens can be
masked; any other variation turns the check off) and repo_bench.py `_timed_rounds` (a
`faster` with `expect.off` is not demoted like one with `expect.empty`).
Fix: mask every number token (integers too) at the positions the original's runs vary in, and
switch the check off only when the text around the numbers varies; where the check is off,
report `unverified` (as for a metric-only bench), never `faster`.
"""
from __future__ import annotations

from pathlib import Path

from tests.support.small_repo import diff_of, evaluate_patch, make_repo

LIB = "def work(n):\n    total = 0\n    for i in range(n):\n        total += (i * i) % 7\n    return total\n"
FILES = {
    "lib.py": LIB,
    "bench.py": ("import time\n\nimport lib\n\nstart = time.perf_counter()\nresult = lib.work(3_000_000)\n"
                 "print(\"result:\", result)\n"
                 "print(\"took\", int((time.perf_counter() - start) * 1e6), \"us\")\n"),
    "test_lib.py": ("import lib\n\nassert lib.work(10) == sum((i * i) % 7 for i in range(10))\n"
                    "assert lib.work(1000) == sum((i * i) % 7 for i in range(1000))\n"),
}
WRONG = LIB.replace("    total = 0\n", "    if n > 100000:\n        return 2 * n\n    total = 0\n", 1)


def test_wrong_answer_with_integer_timing_is_not_faster(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    res = evaluate_patch(repo, diff_of(repo, {"lib.py": WRONG}))
    print(res["verdict"], res.get("speedup"), res.get("speedup_ci"), res.get("reason"), res.get("checks"))
    assert res["verdict"] != "faster", res
