"""Red team 34 (honest candidate): a test command that names the hot file (`python -m doctest
lib/work.py && pytest -q tests`) makes the hot file the bench's.

`RepoTarget._set_policy` drops every hot file that a command names as a word (red team 30: a
bench script that is itself hot) and `guard.bench_files` protects every file the commands name --
the --test command's words included. A module whose doctests the test command runs by path
(`python -m doctest lib/work.py`, `pytest --doctest-modules lib/work.py`) can then never change:
no hot file is left (every source file "editable"), and the one that matters is "part of the
bench". The candidate is an honest closed form of `total` (its doctest kept).

Observed before: `rejected` ("lib/work.py is part of the bench").
Should be: `faster`, correct (a file named only by --test is under test, not the bench's).
Withdrawn (round 38): letting such a file change, its doctests rerun with `-v` on both trees, was
worked round in four ways by red teams 35-38 (an example rebinding `total`, interpreter options
the rerun could not parse, pytest's --doctest-modules, `python -m lib.work`); the file stays
protected and this honest patch is `rejected` with the reason. Left as an xfail.
"""
from __future__ import annotations

import pytest

from tests.redteam._work_repo import PY, judge

WORK = ('def total(n):\n    """The sum of i * i % 7 over range(n).\n\n    >>> total(10)\n    19\n    """\n'
        '    s = 0\n    for i in range(n):\n        s += (i * i) % 7\n    return s\n')
FILES = {
    "lib/__init__.py": "",
    "lib/work.py": WORK,
    "tests/test_work.py": ("from lib.work import total\n\n\ndef test_total():\n"
                           "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n"),
    "bench.py": "from lib.work import total\nprint('result', total(3_000_000))\n",
}
HONEST = (WORK.split("    s = 0")[0]
          + "    q, r = divmod(n, 7)\n    return 14 * q + sum((i * i) % 7 for i in range(r))\n")


@pytest.mark.xfail(strict=False, reason="left: a hot file the test command names stays protected (red team 38)")
def test_an_honest_patch_to_a_module_whose_doctests_the_test_command_runs_is_faster(tmp_path):
    res = judge(tmp_path, FILES, {"lib/work.py": HONEST}, "lib/work.py:total",
                test=f"{PY} -m doctest lib/work.py && {PY} -m pytest -q tests")
    assert res["correct"] and res["verdict"] == "faster", res
