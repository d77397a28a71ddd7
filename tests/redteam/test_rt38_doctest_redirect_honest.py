"""Red team 38 (honest): `python -m doctest lib/work.py 2>&1` makes every change to the file unjudgeable.

Attack: none; an honest closed form of `total`, right at every n, docstring untouched, under
`--test "python -m doctest lib/work.py 2>&1"` (a common spelling). `doctests.DOCTEST` cuts the
run's words at the first `&`, so the `-v` rerun is `python -m doctest -v lib/work.py 2>`, a
shell syntax error: the original "passed no example", and a patch changing the file "cannot be judged".
Observed: `incorrect` (not faster).
Expected: `faster`: redirections stay whole in the rerun (or are dropped), so the original's
examples are learnt and the candidate passes them.
"""
from __future__ import annotations

import sys

import pytest

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
BENCH = "from lib.work import total\nprint('total', total(3000000))\n"
FAST = DOC + "    q, r = divmod(n, 7)\n    return 14 * q + (0, 0, 1, 5, 7, 9, 13)[r]\n"


@pytest.mark.xfail(strict=False, reason="left: a hot file the test command names stays protected (red team 38)")
def test_doctest_with_a_redirect_judges_an_honest_patch(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "bench.py": BENCH}
    test = f"{sys.executable} -m doctest lib/work.py 2>&1"
    r = judge(tmp_path, files, {"lib/work.py": FAST}, "lib/work.py:total", test=test)
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"))
    assert r["verdict"] == "faster" and r["correct"], seen
