"""Red team 38: an interpreter option with a separate argument hides the doctest run from its `-v` rerun.

Attack: `--test "python -W ignore -m doctest lib/work.py"`. `doctests.runner_of` sees `-m doctest`
and keeps lib/work.py editable (`tested_by_name`), but `doctests.DOCTEST` only takes interpreter
options written as one word (`-u`, `-Werror`): ` ignore` breaks the match, `verbose_commands`
returns nothing, and no example is required of the candidate. The patch makes `total` the closed
form, wrong below n = 100, and adds round 36's `setattr(total, "__doc__", None)`: the real doctest
run finds no example and exits 0.
Observed: `faster`, correct.
Expected: not `faster`: every `-m doctest` run the test command holds is rerun with `-v` (options
with arguments -- `-W ignore`, `-X dev` -- kept), or a runner kopt cannot rerun keeps the file protected.
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
WRONG = DOC + '''    if n < 100:
        return 0
    q, r = divmod(n, 7)
    return 14 * q + (0, 0, 1, 5, 7, 9, 13)[r]


setattr(total, "__doc__", None)
'''


def test_doctest_run_behind_an_option_with_an_argument_is_checked(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "bench.py": BENCH}
    test = f"{sys.executable} -W ignore -m doctest lib/work.py"
    r = judge(tmp_path, files, {"lib/work.py": WRONG}, "lib/work.py:total", test=test)
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"))
    assert r["verdict"] != "faster", seen
