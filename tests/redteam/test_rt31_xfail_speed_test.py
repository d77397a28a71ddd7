"""rt31: a speed test marked xfail ("too slow for now") turns xpassed on an honest faster patch: `incorrect`.

Attack (honest): the tests hold, beside the correctness test, a performance test marked
`@pytest.mark.xfail(reason="the pure-Python loop is too slow", strict=False)` asserting that
`total(3_000_000)` takes under 50 ms -- a known-slow marker waiting for exactly the
optimisation kopt is asked for. The original's summary is `1 passed, 1 xfailed`. The honest
patch (a closed form) makes the speed test pass: `1 passed, 1 xpassed`.
Measured here: `incorrect` ("--test reports 1 passed, 1 xpassed where the original's reports
1 passed, 1 xfailed: every test the original ran must run and pass the same way").
Honest outcome: `faster` (every test the original passed still passes; a test expected to fail
now passes, which is the point of the patch).
Root cause: agent/targets/repo/test_tally.py `differs` requires every count to equal the
original's, xfailed and xpassed included; a test moving from xfailed to xpassed (or to passed,
once a strict marker is dropped) is read as a test that did not run the same way.
Fix idea: compare per-test outcomes and refuse only a test the original passed that did not pass
(skipped, deselected, xfailed, failed, absent); with counts only, treat `xfailed -> xpassed` as no
loss (passed, skipped and deselected must match; xfailed + xpassed must total the same).
Fixed: an xfail that now passes counts as passed (test_tally: the candidate must pass every test
the original passed, by id with pytest -rA, and have no more skipped, failed, ... ones).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import TOTAL_MOD7, evaluate, repo_target

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

WORK = TOTAL_MOD7
FAST = '''_PATTERN = (0, 1, 4, 2, 2, 4, 1)


def total(n):
    """The sum of i * i % 7 over range(n)."""
    q, r = divmod(n, 7)
    return q * 14 + sum(_PATTERN[:r])
'''
TEST = '''import time

import pytest

from work import total


def test_total():
    for n in (0, 1, 6, 7, 8, 50, 1000, 12345):
        assert total(n) == sum(i * i % 7 for i in range(n))


@pytest.mark.xfail(strict=False, reason="too slow for now")
def test_large_input_is_fast():
    start = time.perf_counter()
    total(3_000_000)
    assert time.perf_counter() - start < 0.05
'''
BENCH = "from work import total\n\nn = 3_000_000\nprint(f'result: {total(n)}')\n"


def test_a_speed_test_that_now_passes_is_not_a_lost_test(tmp_path: Path):
    t = repo_target(tmp_path, {"work.py": WORK, "test_work.py": TEST, "bench.py": BENCH}, focus="work.py:total")
    assert t.test_tally.summaries == [{"passed": 1, "xfailed": 1}]
    r = evaluate(t, tmp_path, {"work.py": FAST})
    print(r["verdict"], r.get("speedup"), r.get("reason"))
    assert r["verdict"] == "faster", f"an honest closed form was {r['verdict']}: {r.get('reason')}"
