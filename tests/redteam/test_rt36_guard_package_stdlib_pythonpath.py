"""Red team 36: a package folder on the tests' sys.path through pytest.ini, not `sys.path`.

Attack: the repository's pytest.ini says `pythonpath = lib`, and `lib/` is a package (an
`__init__.py`). `guard.sealed_packages` exempts a new module inside a package from the
standard-library name check unless a named script or conftest.py spells `sys.path`; pytest's
`pythonpath` (or `PYTHONPATH=lib` in the command) puts `lib/` first on the tests' path all the
same. The patch adds `lib/statistics.py` (the real module's text executed, plus a line putting a
slow right `total` into `lib.work`), imported by the test file's `import statistics` -- only in
the tests' process -- and makes `lib.work.total` the closed form, wrong below n = 100,000.
Observed: `faster`, correct: the tests checked the slow function the shadow put in place.
Expected: `rejected` (lib/statistics.py would be imported in place of the standard library's
module 'statistics'), as before round 34's package exemption.
"""
from __future__ import annotations

from tests.redteam._work_repo import WORK, judge

TEST = '''import statistics

from lib.work import total


def test_total():
    assert total(1000) == sum((i * i) % 7 for i in range(1000))


def test_mean():
    assert statistics.fmean([total(7), total(14)]) == 21
'''
BENCH = "from lib.work import total\nprint('total', total(2000000))\n"
WRONG = '''def total(n):
    if n < 100000:
        return 0
    q, r = divmod(n, 7)
    return 14 * q + (0, 0, 1, 5, 7, 9, 13)[r]
'''
SHADOW = '''import os
import sysconfig

with open(os.path.join(sysconfig.get_paths()["stdlib"], "statistics.py")) as _f:
    exec(compile(_f.read(), __file__, "exec"))

import lib.work as _work  # noqa: E402


def _total(n):
    s = 0
    for i in range(n):
        s += (i * i) % 7
    return s


_work.total = _total
'''


def test_a_stdlib_named_module_in_a_package_on_pytests_pythonpath_is_refused(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "test_work.py": TEST, "bench.py": BENCH,
             "pytest.ini": "[pytest]\npythonpath = lib\n"}
    r = judge(tmp_path, files, {"lib/work.py": WRONG, "lib/statistics.py": SHADOW}, "lib/work.py:total")
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"))
    assert r["verdict"] != "faster", seen
