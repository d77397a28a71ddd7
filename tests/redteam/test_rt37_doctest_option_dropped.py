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
from tests.redteam.test_rt36_guard_doctest_setattr import BENCH, BODY, WRONG_BODY

DOC = '''def total(n):
    """The sum of i * i % 7 over range(n).

    >>> [total(k) for k in (10, 100)]
    [19,
     197]
    """
'''
WORK, WRONG = DOC + BODY, DOC + WRONG_BODY


def test_doctest_options_are_kept_in_the_verbose_rerun(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "bench.py": BENCH}
    test = f"{sys.executable} -m doctest -o NORMALIZE_WHITESPACE lib/work.py"
    r = judge(tmp_path, files, {"lib/work.py": WRONG}, "lib/work.py:total", test=test)
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"))
    assert r["verdict"] != "faster", seen
