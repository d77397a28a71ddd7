"""Red team 37: the hot file's doctests run through a shell glob, so no file is named.

Attack: `--test "python -m doctest lib/*.py"` (every module's doctests, a common spelling).
`guard.command_words` splits `lib/*.py` at the `*`, so lib/work.py is named by no command: it is
neither `tested_by_name` nor protected, and `doctests.verbose_commands` runs nothing for it. The
patch makes `total` the closed form, wrong below n = 100, and adds `setattr(total, "__doc__",
None)` (round 36's attack): the glob's doctest run finds no example and exits 0.
Observed: `faster`, correct.
Expected: not `faster`: the files a glob in --test expands to are named by it (its examples run
on both sides by `doctests.py`, as with `python -m doctest lib/work.py`).
"""
from __future__ import annotations

import sys

from tests.redteam._work_repo import judge
from tests.redteam.test_rt36_guard_doctest_setattr import BENCH, WORK, WRONG


def test_doctests_run_through_a_glob_are_kept(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "bench.py": BENCH}
    test = f"{sys.executable} -m doctest lib/*.py"
    r = judge(tmp_path, files, {"lib/work.py": WRONG}, "lib/work.py:total", test=test)
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"))
    assert r["verdict"] != "faster", seen
