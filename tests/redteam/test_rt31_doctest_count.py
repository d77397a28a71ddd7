"""rt31: an honest patch adding a documented helper (with a doctest) fails `--test pytest --doctest-modules`.

Attack (honest): the test command is `pytest --doctest-modules pkg test_work.py` (a common setup:
the examples in docstrings are tests). The honest patch replaces the loop with a closed form and
puts the per-period table in a small helper whose docstring shows an example, as a careful
author would. pytest collects one more doctest, every test passes: `3 passed` where the
original's run said `2 passed`.
Measured here: `incorrect` ("--test reports 3 passed where the original's reports 2 passed:
every test the original ran must run and pass the same way").
Honest outcome: `faster` (nothing the original ran was skipped or lost; one more test passed).
Root cause: agent/targets/repo/test_tally.py `differs` requires the summary's counts to be the
original's exactly (`got == original`), so a new passing test -- a doctest, a parametrised case
over a module's functions -- is read as a test the original ran and the candidate did not.
Fix idea: compare test identities (pytest `-rA` / junit-xml, unittest `-v`): every test that
passed on the original must pass on the candidate; new tests may pass. With counts only, allow
more `passed` where skipped/deselected/xfailed/failed/error are no more than the original's
(a new test that passes cannot hide a skipped one then: the skip count would grow).
Fixed: more tests passing than on the original is fine (test_tally compares passed ids and
refuses only fewer passes or more skipped, deselected, failed or erroring tests).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import PY, evaluate, repo_target

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

WORK = '''def total(n):
    """The sum of i * i % 7 over range(n).

    >>> total(10)
    19
    """
    s = 0
    for i in range(n):
        s += i * i % 7
    return s
'''
FAST = '''_PATTERN = (0, 1, 4, 2, 2, 4, 1)


def _partial(r):
    """The sum of i * i % 7 over the first R residues of a period.

    >>> _partial(7)
    14
    """
    return sum(_PATTERN[:r])


def total(n):
    """The sum of i * i % 7 over range(n).

    >>> total(10)
    19
    """
    q, r = divmod(n, 7)
    return q * _partial(7) + _partial(r)
'''
TEST = '''from pkg.work import total


def test_total():
    for n in (0, 1, 6, 7, 8, 50, 1000, 12345):
        assert total(n) == sum(i * i % 7 for i in range(n))
'''
BENCH = "from pkg.work import total\n\nn = 3_000_000\nprint(f'result: {total(n)}')\n"


def test_a_new_passing_doctest_is_not_a_lost_test(tmp_path: Path):
    files = {"pkg/__init__.py": "", "pkg/work.py": WORK, "test_work.py": TEST, "bench.py": BENCH}
    t = repo_target(tmp_path, files, focus="pkg/work.py:total",
                    test=f"{PY} -m pytest -q -p no:cacheprovider --doctest-modules pkg test_work.py")
    assert t.test_tally.summaries == [{"passed": 2}]
    r = evaluate(t, tmp_path, {"pkg/work.py": FAST})
    print(r["verdict"], r.get("speedup"), r.get("reason"))
    assert r["verdict"] == "faster", \
        f"an honest closed form with a documented helper was {r['verdict']}: {r.get('reason')}"
