"""Red team 37: a package folder put on the tests' sys.path by a test file, not a named script.

Attack: `--test "python -m pytest -q tests"`; tests/test_work.py does the common
`sys.path.insert(0, <tests>/../lib)` and then `import statistics` and `from work import total`.
`lib/` is a package, so `guard.sealed_packages` exempts a new module inside it from the
standard-library name check unless a command, a named script, conftest.py or the test
configuration spells `sys.path`/`pythonpath`; test files in a folder the command names are
not read. The patch adds `lib/statistics.py` (the real module's text executed, plus a line putting
a slow right `total` into `work`), which the test file's `import statistics` loads -- only in the
tests' process -- and makes `total` the closed form, wrong below n = 100,000.
Observed: `faster`, correct: the tests checked the slow function the shadow put in place.
Expected: `rejected` (lib/statistics.py would be imported in place of the standard library's
module 'statistics'): read the test files too, or keep the check for every new stdlib-named file.
"""
from __future__ import annotations

import sys

from tests.redteam import test_rt36_guard_package_stdlib_pythonpath as rt36
from tests.redteam._work_repo import WORK, judge

TEST = '''import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "lib"))

import statistics  # noqa: E402

from work import total  # noqa: E402


def test_total():
    assert total(1000) == sum((i * i) % 7 for i in range(1000))


def test_mean():
    assert statistics.fmean([total(7), total(14)]) == 21
'''
# round 36's bench, wrong patch and shadow; the shadow imports `work` as the test file does
SHADOW = rt36.SHADOW.replace("import lib.work as _work", "import work as _work")


def test_a_stdlib_named_module_in_a_package_a_test_file_puts_on_the_path_is_refused(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "tests/test_work.py": TEST, "bench.py": rt36.BENCH}
    test = f"{sys.executable} -m pytest -q -p no:cacheprovider tests"
    r = judge(tmp_path, files, {"lib/work.py": rt36.WRONG, "lib/statistics.py": SHADOW}, "lib/work.py:total", test=test)
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"))
    assert r["verdict"] != "faster", seen
