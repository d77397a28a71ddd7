"""Red team 37: a doctest kept by its source, its expected output rewritten to the wrong answer.

Attack: `--test "python -m doctest lib/work.py"` (rounds 34-36: the hot file's doctests are its
tests). `doctests.passed_examples` keys each example the `-v` run passed by its source alone
(`total(10)`); the `Expecting:` lines are skipped. The patch makes `total` the closed form, wrong
below n = 100 (`total(10)` is 0, not 19), and rewrites the docstring's expected output for
`total(10)` from 19 to 0. The example still runs and "passes"; bench and second input are right.
Observed: `faster`, correct.
Expected: not `faster`: an example the original passed must pass with the original's expected
output (key the examples by source and want), or the hot file's docstrings stay as they were.
"""
from __future__ import annotations

import sys

from tests.redteam._work_repo import judge

DOC = '''def total(n):
    """The sum of i * i % 7 over range(n).

    >>> total(10)
    {ten}
    >>> total(100)
    197
    """
'''
WORK = DOC.format(ten=19) + "    s = 0\n    for i in range(n):\n        s += (i * i) % 7\n    return s\n"
BENCH = "from lib.work import total\nprint('total', total(2000000))\n"
WRONG = DOC.format(ten=0) + '''    if n < 100:
        return 0
    q, r = divmod(n, 7)
    return 14 * q + (0, 0, 1, 5, 7, 9, 13)[r]
'''


def test_a_doctest_whose_expected_output_was_rewritten_is_lost(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "bench.py": BENCH}
    test = f"{sys.executable} -m doctest lib/work.py"
    r = judge(tmp_path, files, {"lib/work.py": WRONG}, "lib/work.py:total", test=test)
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"))
    assert r["verdict"] != "faster", seen
