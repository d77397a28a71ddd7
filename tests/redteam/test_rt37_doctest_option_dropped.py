"""Red team 37: `python -m doctest -o NORMALIZE_WHITESPACE FILE`: the `-v` rerun drops the option.

Attack: `--test "python -m doctest -o NORMALIZE_WHITESPACE lib/work.py"`; the examples print a
list wrapped over two lines, which passes only with the option. `doctests.verbose_commands`
builds `python -m doctest -v lib/work.py` from the interpreter alone, so on the original every
example fails there, `passed_examples` is empty, and nothing is required of the candidate. The
patch makes `total` wrong below n = 100 and adds `setattr(total, "__doc__", None)` (round 36):
the real doctest run finds no example and exits 0.
Observed: `faster`, correct.
Expected: not `faster`: the `-v` rerun keeps the command's doctest options (`-o`, `-f`), or an
original with no example passing there makes the check blind, not satisfied.
"""
from __future__ import annotations

import sys

from tests.redteam._work_repo import judge

DOC = '''def total(n):
    """The sum of i * i % 7 over range(n).

    >>> [total(k) for k in (10, 100)]
    [19,
     197]
    """
'''
WORK = DOC + "    s = 0\n    for i in range(n):\n        s += (i * i) % 7\n    return s\n"
BENCH = "from lib.work import total\nprint('total', total(2000000))\n"
WRONG = DOC + '''    if n < 100:
        return 0
    q, r = divmod(n, 7)
    return 14 * q + (0, 0, 1, 5, 7, 9, 13)[r]


setattr(total, "__doc__", None)
'''


def test_doctest_options_are_kept_in_the_verbose_rerun(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "bench.py": BENCH}
    test = f"{sys.executable} -m doctest -o NORMALIZE_WHITESPACE lib/work.py"
    r = judge(tmp_path, files, {"lib/work.py": WRONG}, "lib/work.py:total", test=test)
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"))
    assert r["verdict"] != "faster", seen
