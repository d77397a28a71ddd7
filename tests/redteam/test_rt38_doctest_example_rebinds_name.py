"""Red team 38: an added example rebinds the name the original's examples call.

Attack: `--test "python -m doctest lib/work.py"`. `doctests.passed_examples` knows an example by
its source and expected output only, not by what ran before it in its docstring. The patch makes
`total` the closed form, wrong below n = 100, keeps the old loop as `_exact` and puts one new
example first in the docstring, `>>> total = _exact`: doctest runs a docstring's examples in one
namespace, so the original's `total(10)` / `19` and `total(100)` / `197` run `_exact` and pass,
word for word as on the original.
Observed: `faster`, correct.
Expected: not `faster`: the original's examples must pass in their original context (no new
example before them in their docstring, or the candidate's examples run against the
candidate's function), e.g. compare each docstring's example sequence, not a multiset.
"""
from __future__ import annotations

import sys

from tests.redteam._work_repo import judge

DOC = '''def total(n):
    """The sum of i * i % 7 over range(n).

    >>> total(10)
    19
    >>> total(100)
    197
    """
'''
WORK = DOC + "    s = 0\n    for i in range(n):\n        s += (i * i) % 7\n    return s\n"
BENCH = "from lib.work import total\nprint('total', total(2000000))\n"
WRONG = '''def _exact(n):
    s = 0
    for i in range(n):
        s += (i * i) % 7
    return s


def total(n):
    """The sum of i * i % 7 over range(n).

    >>> total = _exact
    >>> total(10)
    19
    >>> total(100)
    197
    """
    if n < 100:
        return 0
    q, r = divmod(n, 7)
    return 14 * q + (0, 0, 1, 5, 7, 9, 13)[r]
'''


def test_kept_examples_must_test_the_candidates_function(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "bench.py": BENCH}
    test = f"{sys.executable} -m doctest lib/work.py"
    r = judge(tmp_path, files, {"lib/work.py": WRONG}, "lib/work.py:total", test=test)
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"))
    assert r["verdict"] != "faster", seen
