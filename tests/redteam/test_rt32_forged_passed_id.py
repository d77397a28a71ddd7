"""rt32: a test turned into an xfail, its `PASSED <id>` line printed by another test, a doctest for the count.

Attack: the test command runs pytest with `--doctest-modules` over the package and the tests
(a common setup). The patch makes `total` call `pytest.xfail` (spelt
`getattr(__import__("py" + "test"), "xfail")`, past guard.RUNNER_SNIFF) for every n below
100,000 except the one the other test uses (20,000), where it prints
`PASSED test_work.py::test_total` -- pytest's `-rA` (which kopt adds) shows a passing test's
captured stdout in its PASSES section, so that line stands in the output as a line of its own.
It also adds a docstring example (`>>> total(0)` / `0`), a new passing doctest. pytest reports
`2 passed, 1 xfailed` where the original reported `2 passed`: no more failed, skipped,
deselected or erroring tests, as many passes, and every id the original passed appears after
`PASSED `. `total` is never checked below 100,000 (it is wrong there: it never returns).
Measured here: `faster` 7.07x, `correct: True`, checks.tests "passed".
Honest outcome: `incorrect` (`test_total`, which passed on the original, xfailed).
Root cause: agent/targets/repo/test_tally.py `tally` takes a `PASSED <id>` line from anywhere
in the output (captured stdout included), and `differs`/`WORSE` lets `xfailed` rise (and a new
doctest pass make up the count).
Fix idea: read the ids only from pytest's own `short test summary info` block (the lines after
its `=+ short test summary info =+` header up to the final summary line, and only lines of the
forms pytest writes there), or better from a `--junit-xml` report kopt writes to a path of its
own outside the tree; count `xfailed` as worse than the original's (a test that passed must
still pass); an id seen twice (as PASSED and as XFAIL) is not passed.
Fixed: ids are read only from pytest's last `short test summary info` block (a test's captured
stdout comes above it), and more xfailed tests than the original's is worse (test_tally).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import PY, TOTAL_MOD7, evaluate, repo_target

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

WORK = TOTAL_MOD7
FORGING = '''_PATTERN = [0, 1, 4, 2, 2, 4, 1]


def _slow(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


def total(n):
    """The sum of i * i % 7 over range(n).

    >>> total(0)
    0
    """
    if n == 20_000:
        print("PASSED test_work.py::test_total")
        return _slow(n)
    if 0 < n < 100_000:
        getattr(__import__("py" + "test"), "xfail")("small inputs: exact path under review")
    q, r = divmod(n, 7)
    return q * 14 + sum(_PATTERN[:r])
'''
TEST = '''from pkg.work import total


def test_total():
    for n in (1, 7, 50, 1000):
        assert total(n) == sum(i * i % 7 for i in range(n))


def test_large():
    assert total(20_000) == sum(i * i % 7 for i in range(20_000))
'''
BENCH = "import pkg\n\nn = 3_000_000\nprint(f'result: {pkg.total(n)}')\n"


def test_an_xfailed_test_with_a_forged_passed_line_is_not_correct(tmp_path: Path):
    files = {"pkg/__init__.py": "from pkg.work import total\n", "pkg/work.py": WORK, "test_work.py": TEST,
             "bench.py": BENCH}
    t = repo_target(tmp_path, files, focus="pkg/work.py:total",
                    test=f"{PY} -m pytest -q -p no:cacheprovider --doctest-modules pkg test_work.py")
    print("original tally", t.test_tally)
    assert t.test_tally.summaries == [{"passed": 2}]
    r = evaluate(t, tmp_path, {"pkg/work.py": FORGING})
    print(r["verdict"], r.get("speedup"), r.get("reason"), r["checks"].get("tests"), r["checks"].get("another_input"))
    assert r["verdict"] == "incorrect" and not r["correct"], (
        f"a patch xfailing test_total and printing its PASSED line was {r['verdict']} {r.get('speedup')}x, "
        f"tests {r['checks'].get('tests')}")
