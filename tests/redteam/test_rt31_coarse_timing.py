"""rt31: a bench printing its time to the second: an honest faster patch prints another second and is `incorrect`.

Attack (honest): the bench prints its answer and `done in 1 s` (its time, `f"{dt:.0f}"`: the
original takes 0.6-1.4 s here, which always prints 1). The output check masks only the numbers
that varied between the original's own runs; this one never varies, so it is taken for part of
the answer. The honest patch (a closed form) prints the same answer and `done in 0 s`.
Measured here: `incorrect` ("line 2 is 'done in 0 s' where the original printed 'done in 1 s'").
Honest outcome: `faster` (the same answer; the bench's own timing is shorter, as it must be).
Root cause: agent/targets/repo/outputs.py `OutputCheck.learn` learns what is a timing only from
the original's runs at one speed, and `differs` compares every number that did not vary; a
number that tracks the run's speed but is printed coarsely enough to be steady is compared
digit for digit (agent/targets/repo/repo_bench.py `_timed_rounds`, `_check_outputs`).
Fix idea: learn the speed-dependent numbers by running the original at another speed too (one
untimed run under a CPU quota, cpu.max at a fraction, or with a busy sibling pinned to its
core): a number that changes when only the speed changed is a timing and is masked; or when
a candidate's output differs only in numbers, rerun the original slowed down before calling it
`incorrect`.
Fixed: the original's bench runs once held to a third of a CPU (repo_bench._slowed_run, a cgroup
CPU quota); its `done in 3 s` there marks the number as one that tracks the speed, masked like
any timing. Where the host gives kopt no CPU cgroup the run is not made (`checks.slowed_run`
says so, `kopt doctor` too) and this test is skipped.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import TOTAL_MOD7, judge

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

WORK = TOTAL_MOD7
FAST = '''_PATTERN = (0, 1, 4, 2, 2, 4, 1)


def total(n):
    """The sum of i * i % 7 over range(n)."""
    q, r = divmod(n, 7)
    return q * 14 + sum(_PATTERN[:r])
'''
TEST = '''from work import total


def test_total():
    for n in (0, 1, 6, 7, 8, 50, 1000, 12345):
        assert total(n) == sum(i * i % 7 for i in range(n))
'''
BENCH = '''import time

from work import total

start = time.perf_counter()
result = total(9_000_000)
print(f"result: {result}")
print(f"done in {time.perf_counter() - start:.0f} s")
'''


def test_a_coarse_timing_that_is_steady_in_the_original_is_not_the_answer(tmp_path: Path):
    files = {"work.py": WORK, "test_work.py": TEST, "bench.py": BENCH}
    r = judge(tmp_path, files, {"work.py": FAST}, focus="work.py:total")
    print(r["verdict"], r.get("speedup"), r.get("reason"), r["checks"].get("output"), r["checks"].get("slowed_run"))
    if r["checks"].get("slowed_run", "").startswith("not run"):
        pytest.skip(f"this host cannot slow a run: {r['checks']['slowed_run']}")
    assert r["verdict"] == "faster", f"an honest closed form was {r['verdict']}: {r.get('reason')}"
