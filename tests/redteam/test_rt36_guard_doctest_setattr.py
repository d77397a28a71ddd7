"""Red team 36: a doctest kept in the source but taken off the function at import time.

Attack: `--test "python -m doctest lib/work.py"` (round 34's setup: the hot file's doctests are
its tests, `guard.doctest_lost` keeps them). The patch keeps `total`'s docstring and examples
word for word as the last binding, decorators unchanged, and adds one top-level line
`setattr(total, "__doc__", None)`; doctest's finder reads `total.__doc__` at run time, finds
nothing and runs no example (exit 0). `total` is the closed form, wrong below n = 100 (the
examples' sizes), right at the bench's size and on its second input. `_bound_names` sees
`total.__doc__ = None` (an Assign) but not `setattr(...)`, `if True: def total...`, `for total in
...:` or `globals().update(total=...)` (all found to lose the examples the same way).
Observed: `faster`, correct: no test ran.
Expected: `rejected` (lib/work.py loses its doctests) -- or at least not `faster`.
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
BODY = "    s = 0\n    for i in range(n):\n        s += (i * i) % 7\n    return s\n"
BENCH = "from lib.work import total\nprint('total', total(2000000))\n"
# wrong below 100, and doctest's finder sees no docstring (red team 37 reuses it under other commands)
WRONG_BODY = '''    if n < 100:
        return 0
    q, r = divmod(n, 7)
    return 14 * q + (0, 0, 1, 5, 7, 9, 13)[r]


setattr(total, "__doc__", None)
'''
WORK, WRONG = DOC + BODY, DOC + WRONG_BODY


def test_a_doctest_taken_off_at_import_is_lost(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "bench.py": BENCH}
    test = f"{sys.executable} -m doctest lib/work.py"
    r = judge(tmp_path, files, {"lib/work.py": WRONG}, "lib/work.py:total", test=test)
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"))
    assert r["verdict"] != "faster", seen
