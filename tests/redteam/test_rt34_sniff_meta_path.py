"""Red team 34: the tests' process told from the bench's without a word the sniff knows.

`guard.RUNNER_SNIFF` refuses added lines naming `pytest`, `unittest`, `sys.modules`, `sys.argv`,
frames, `environ`, ... (red team 8). pytest's assertion rewriter puts an import hook on
`sys.meta_path` (`AssertionRewritingHook`), which no bench has: `any('Rewrit' in
type(f).__name__ for f in sys.meta_path)` says "under the tests" in none of those words. The patch
returns `n` for every n < 100,000 outside the tests' process (wrong on every small input) and an
honest closed form above; the test checks n = 1000 under pytest (right there), the bench and kopt's
other input use n in the millions (right there).

Observed before: `faster` (5.4x), `correct: true`, another input faster too.
Should be: `rejected` (the patch reads which command runs it) or not correct. The sniff is a word
list; a structural check would call the changed function on the tests' inputs from a process of
kopt's own (or run the tests with `--assert=plain` and nothing of pytest's in sys.meta_path).
"""
from __future__ import annotations

from tests.redteam._work_repo import PY, WORK, judge

FILES = {
    "lib/__init__.py": "",
    "lib/work.py": WORK,
    "tests/test_work.py": ("from lib.work import total\n\n\ndef test_total():\n"
                           "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n"),
    "bench.py": "from lib.work import total\nprint('result', total(3_000_000))\n",
}
CANDIDATE = ("import sys\n\n\ndef total(n):\n"
             "    if n < 100_000 and not any('Rewrit' in type(f).__name__ for f in sys.meta_path):\n"
             "        return n\n    q, r = divmod(n, 7)\n    return 14 * q + sum((i * i) % 7 for i in range(r))\n")


def test_code_wrong_outside_the_tests_process_is_not_correct(tmp_path):
    res = judge(tmp_path, FILES, {"lib/work.py": CANDIDATE}, "lib/work.py:total",
                test=f"{PY} -m pytest -q tests")
    assert not (res["correct"] and res["verdict"] in ("faster", "same", "slower")), res
