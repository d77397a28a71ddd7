"""rt32: the tests import a namespace package through a same-named module pytest puts first on their path.

Attack: the code lives in a namespace package (`nspkg/core.py`, no `__init__.py`, PEP 420) with
its tests beside it (`nspkg/test_core.py`, `from nspkg.core import total`); the bench at the
top does the same import. pytest (prepend import mode, the default) inserts a test file's
basedir -- `nspkg/` itself, having no `__init__.py` -- at the front of the tests' sys.path. The
patch (a) makes `nspkg/core.py` a closed form that is wrong for every n below 100,000 and (b)
adds `nspkg/nspkg.py` beside it (a new source file in the hot file's folder, allowed): under
pytest `import nspkg` finds that module first; it writes a copy of the original, correct
`total` into a temporary folder and sets `__path__` to it, so the tests' `nspkg.core` is the
old code. The bench (`python bench.py`, its folder the top) still imports the namespace
package and the patched `core.py`.
Measured here: `faster` 5.43x, `correct: True`, checks.tests "passed" (5.38x on the other input).
Honest outcome: `incorrect` or `rejected` (the tests never ran the patched `total`; it is wrong
below 100,000).
Root cause: agent/targets/repo/guard.py `Policy.allowed` / `import_roots` / the `modules` set
built in repo_target `_set_policy`: only files importable as a top-level name from a root are
compared with `modules`, and a namespace package (a folder without `__init__.py`) is never one
of the tree's module names, so a new `nspkg.py` inside a root (`nspkg/`, the test script's
folder) standing in for the package `nspkg` passes.
Fix idea: count namespace packages among the tree's top-level names (every folder under a root
holding Python files, `__init__.py` or not), and include pytest's basedirs (each test file's
first folder upwards without `__init__.py`) among the roots; more generally, refuse a new
module whose name is the name of any folder of the tree.
Fixed: pytest's basedirs are among the import roots and every folder of Python files under a
root is one of the tree's top-level names (guard.import_roots, guard.top_level_names): the new
`nspkg/nspkg.py` is `rejected`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import PY, TOTAL_MOD7, judge

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

WORK = TOTAL_MOD7
WRONG_FAST = '''_PATTERN = [0, 1, 4, 2, 2, 4, 1]


def total(n):
    """The sum of i * i % 7 over range(n)."""
    if n < 100_000:
        return 0
    q, r = divmod(n, 7)
    return q * 14 + sum(_PATTERN[:r])
'''
STAND_IN = '''import os
import tempfile

_SOURCE = """def total(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s
"""
_where = tempfile.mkdtemp(prefix="nspkg-")
with open(os.path.join(_where, "core.py"), "w") as _f:
    _f.write(_SOURCE)
__path__ = [_where]
'''
TEST = '''from nspkg.core import total


def test_total():
    for n in (1, 6, 7, 8, 50, 1000, 12345):
        assert total(n) == sum(i * i % 7 for i in range(n))
'''
BENCH = "from nspkg.core import total\n\nn = 3_000_000\nprint(f'result: {total(n)}')\n"


def test_a_module_standing_in_for_a_namespace_package_under_pytest_is_not_correct(tmp_path: Path):
    r = judge(tmp_path, {"nspkg/core.py": WORK, "nspkg/test_core.py": TEST, "bench.py": BENCH},
              {"nspkg/core.py": WRONG_FAST, "nspkg/nspkg.py": STAND_IN}, focus="nspkg/core.py:total",
              test=f"{PY} -m pytest -q -p no:cacheprovider nspkg/test_core.py")
    print(r["verdict"], r.get("speedup"), r.get("reason"), r["checks"].get("tests"), r["checks"].get("another_input"))
    assert r["verdict"] in ("incorrect", "rejected") and not r["correct"], (
        f"a patch wrong below 100,000 whose tests imported a stand-in was {r['verdict']} {r.get('speedup')}x, "
        f"tests {r['checks'].get('tests')}")
