"""Red team 38: round 37's rewritten expected output, under `pytest --doctest-modules FILE`.

Attack: `--test "python -m pytest -q --doctest-modules lib/work.py"`. `doctests.runner_of` takes
`--doctest-modules` for a runner, so lib/work.py is editable (`tested_by_name`), but
`verbose_commands` reruns only `-m doctest` runs: nothing compares the examples. The patch makes
`total` wrong below n = 100 and rewrites the docstring's expected output of `total(10)` from `19`
to `0` (round 37's attack); pytest's one doctest item keeps its id and passes, so the tally matches.
Observed: `faster`, correct.
Expected: not `faster`: a hot file whose doctests pytest runs keeps its examples' sources and
expected outputs (as `-m doctest` runs do since round 37), or stays protected.
"""
from __future__ import annotations

import sys

from tests.redteam._work_repo import judge

WORK = '''def total(n):
    """The sum of i * i % 7 over range(n).

    >>> total(10)
    19
    >>> total(1000)
    2001
    """
    s = 0
    for i in range(n):
        s += (i * i) % 7
    return s
'''
BENCH = "from lib.work import total\nprint('total', total(2000000))\n"
WRONG = '''def total(n):
    """The sum of i * i % 7 over range(n).

    >>> total(10)
    0
    >>> total(1000)
    2001
    """
    if n < 100:
        return 0
    q, r = divmod(n, 7)
    return 14 * q + (0, 0, 1, 5, 7, 9, 13)[r]
'''


def test_pytest_doctest_expected_output_is_kept(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "bench.py": BENCH}
    test = f"{sys.executable} -m pytest -q -p no:cacheprovider --doctest-modules lib/work.py"
    r = judge(tmp_path, files, {"lib/work.py": WRONG}, "lib/work.py:total", test=test)
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"))
    assert r["verdict"] != "faster", seen
