"""rt31: an honest helper module inside a package is refused for sharing a name with another package's module.

Attack (honest): the hot function is `pkg/fast/core.py:total`; the tree also has `pkg/io/util.py`
(another subpackage's private helper). The honest patch adds a helper module `pkg/fast/util.py`
beside the hot file (a closed form) and imports it with a relative import (`from .util import
squares_mod`). A module inside a package (its folder has an `__init__.py`) is only importable
as `pkg.fast.util`: it cannot stand in for `pkg.io.util` or any top-level `util` on any command's
sys.path (the root and `src/`, which is what round 30's `src/sqmod.py` shadow used).
Measured here: `rejected` ("pkg/fast/util.py would stand in for the repository's own module
'util' (change that file instead)") before anything ran.
Honest outcome: `faster` (the patch is right and several times faster).
Root cause: agent/targets/repo/repo_target.py `_set_policy` builds `Policy.modules` from the last
name of every Python file in the tree (`guard.module_name`), and agent/targets/repo/guard.py
`Policy.allowed` refuses any new file whose last name is in it, whatever folder (package) it is
in.
Fix idea: refuse only a new file that is importable under a top-level name some command can
find first: a file directly in a folder on a command's sys.path (the tree root, `src/`, the
folders of the scripts the commands name, the subdir) or in a folder without `__init__.py`
that pytest's rootdir insertion may put on sys.path; key the tree's modules by their dotted
name from those roots, not by their last name.
Fixed: only a new file importable as a top-level name from a folder a command's sys.path may hold
(the top, src/, the subdir, the named scripts' folders: guard.import_roots) is checked against the
tree's top-level modules; pkg/fast/util.py stands in for nothing.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import PY, judge

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

CORE = '''def total(n):
    """The sum of i * i % 7 over range(n)."""
    s = 0
    for i in range(n):
        s += i * i % 7
    return s
'''
FAST_CORE = '''from .util import squares_mod


def total(n):
    """The sum of i * i % 7 over range(n)."""
    return squares_mod(n)
'''
FAST_UTIL = '''_PATTERN = (0, 1, 4, 2, 2, 4, 1)


def squares_mod(n):
    """The sum of i * i % 7 over range(n), one period of the residues at a time."""
    q, r = divmod(n, 7)
    return q * 14 + sum(_PATTERN[:r])
'''
IO_UTIL = '''def read_numbers(path):
    with open(path) as f:
        return [int(x) for x in f.read().split()]
'''
TEST = '''from pkg.fast.core import total


def test_total():
    for n in (0, 1, 6, 7, 8, 50, 1000, 12345):
        assert total(n) == sum(i * i % 7 for i in range(n))
'''
BENCH = "from pkg.fast.core import total\n\nn = 3_000_000\nprint(f'result: {total(n)}')\n"


def test_a_helper_module_inside_a_package_is_not_a_shadow(tmp_path: Path):
    files = {f"{folder}/__init__.py": "" for folder in ("pkg", "pkg/fast", "pkg/io")}
    files |= {"pkg/fast/core.py": CORE, "pkg/io/util.py": IO_UTIL, "test_core.py": TEST, "bench.py": BENCH}
    r = judge(tmp_path, files, {"pkg/fast/core.py": FAST_CORE, "pkg/fast/util.py": FAST_UTIL},
              focus="pkg/fast/core.py:total", test=f"{PY} -m pytest -q -p no:cacheprovider test_core.py")
    print(r["verdict"], r.get("speedup"), r.get("reason"))
    assert r["verdict"] == "faster", f"an honest helper module in its own package was {r['verdict']}: {r.get('reason')}"
