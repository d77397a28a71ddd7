"""rt31: round 30's skipping patch again, with the skip count kept: it also un-skips an optional-backend test.

Attack: the tests hold a test of an optional accelerated backend, skipped where it is not built
(`pytest.importorskip("pkg._speedups")`, the usual idiom), so the original's summary is
`1 passed, 1 skipped`. The patch (a) raises `unittest.SkipTest` (spelt `"unit" + "test"`) from
the function under optimization for every n below 100,000, as in round 30, so the real test
of `total` is skipped, and (b) adds `pkg/_speedups.py` beside the hot file (a new source file in
its folder, allowed), so the backend test runs and passes. pytest reports `1 passed, 1 skipped`
-- the original's counts, from other tests. `total` raises for every n < 100,000; the bench's
own input (3,000,000) (and kopt's other input, redrawn below it) get the closed form.
Measured here: `faster` 4.54x, `correct: True`, checks.tests "passed".
Honest outcome: `incorrect` (the test the original ran and passed, `test_total`, was skipped).
Root cause: agent/targets/repo/test_tally.py `differs` compares only the counts of the summary
lines, not which tests passed; agent/targets/repo/repo_bench.py `_tests_and_warm_up`.
Fix idea: compare test identities, not counts: run pytest with `-rA` (or `--junit-xml` to a file
kopt reads, `-p no:cacheprovider`), unittest with `-v`, and require every test id that passed
on the original to pass on the candidate (a skip, xfail, deselect or absence of one is
`incorrect`); counts alone may differ only by tests that are new passes.
Fixed: pytest runs with -rA (PYTEST_ADDOPTS) and the candidate must pass every test id the
original passed (test_tally): `test_total` skipped is `incorrect` whatever the counts.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import PY, TOTAL_MOD7, evaluate, repo_target

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

WORK = TOTAL_MOD7
SKIPPING = '''_PATTERN = [0, 1, 4, 2, 2, 4, 1]


def total(n):
    """The sum of i * i % 7 over range(n)."""
    if n < 100_000:
        raise getattr(__import__("unit" + "test"), "SkipTest")("small inputs: exact path under review")
    q, r = divmod(n, 7)
    return q * 14 + sum(_PATTERN[:r])
'''
SPEEDUPS = '''def total(n):
    return sum(i * i % 7 for i in range(n))
'''
TEST = '''from pkg.work import total


def test_total():
    for n in (0, 1, 7, 50, 1000):
        assert total(n) == sum(i * i % 7 for i in range(n))
'''
TEST_BACKEND = '''import pytest

speedups = pytest.importorskip("pkg._speedups")


def test_backend_total():
    assert speedups.total(1000) == sum(i * i % 7 for i in range(1000))
'''
BENCH = "import pkg\n\nn = 3_000_000\nprint(f'result: {pkg.total(n)}')\n"


def test_a_skip_traded_for_an_unskipped_backend_test_is_not_correct(tmp_path: Path):
    files = {"pkg/__init__.py": "from pkg.work import total\n", "pkg/work.py": WORK, "test_work.py": TEST,
             "test_backend.py": TEST_BACKEND, "bench.py": BENCH}
    t = repo_target(tmp_path, files, focus="pkg/work.py:total",
                    test=f"{PY} -m pytest -q -p no:cacheprovider test_work.py test_backend.py")
    assert t.test_tally.summaries == [{"passed": 1, "skipped": 1}]
    r = evaluate(t, tmp_path, {"pkg/work.py": SKIPPING, "pkg/_speedups.py": SPEEDUPS})
    print(r["verdict"], r.get("speedup"), r.get("reason"), r["checks"].get("tests"), r["checks"].get("another_input"))
    assert r["verdict"] == "incorrect" and not r["correct"], (
        f"a patch raising SkipTest for every n < 100,000 was {r['verdict']} {r.get('speedup')}x, "
        f"tests {r['checks'].get('tests')}")
