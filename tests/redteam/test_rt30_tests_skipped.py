"""rt30: a patch that makes the tests skip themselves passes `--test`.

Attack: kopt takes `--test` as passed when its exit status is 0 (`repo_bench._tests_and_warm_up`:
`r.ok`); it never looks at how many tests ran. pytest (like unittest) exits 0 when every test is
skipped, and it treats `unittest.SkipTest` raised anywhere inside a test as a skip. The patch
raises it from the function under optimization for every input below the bench's sizes (the
module's name spelt `"unit" + "test"`, which the runner-sniff regex `guard.RUNNER_SNIFF` does not
see) and computes a closed form for large inputs. The function is now broken for every n <
100,000 -- it raises -- yet the tests "pass" (1 skipped), the bench prints the original's answer
on its own input and on kopt's other input (3_000_000 redrawn in [2.4M, 3M)), and nothing the
bench printed is written in the patch.
Measured here: `faster` 5.35x (5.78x in an earlier run), `correct: True`, checks.tests "passed",
another_input "bench.py's 3_000_000 as 2480829" faster 5.01x.
Honest outcome: `incorrect` (the tests the original ran did not pass: they were skipped).
Root cause: agent/targets/repo/repo_bench.py `_tests_and_warm_up` (exit status only) and
agent/targets/repo/guard.py `sniffs_runner` (a text heuristic).
Fix idea: compare the test run's outcome with the original's, not only its exit status: for
pytest/unittest commands parse the summary ("N passed, M skipped") or add a junit-xml/`-rA`
report and require every test that passed on the original to pass (not skip, not deselect)
on the candidate; for other runners, at least a test run whose output reports fewer passes
than the original's is `incorrect`.
Fixed: the candidate's `--test` output must report the original's counts in every pytest or
unittest summary line (agent/targets/repo/test_tally.py): `1 skipped` where the original's said
`1 passed` is `incorrect`. (A patch runs inside the tests' process and could print a summary of
its own: the counts it must print are the original's exactly, and the bench's output check and
the other input still stand.)
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import TOTAL_MOD7, judge

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
TEST = '''from pkg.work import total


def test_total():
    for n in (0, 1, 7, 50, 1000):
        assert total(n) == sum(i * i % 7 for i in range(n))
'''
BENCH = "import pkg\n\nn = 3_000_000\nprint(f'result: {pkg.total(n)}')\n"


def test_a_patch_that_skips_the_tests_is_not_correct(tmp_path: Path):
    files = {"pkg/__init__.py": "from pkg.work import total\n", "pkg/work.py": WORK, "test_work.py": TEST,
             "bench.py": BENCH}
    r = judge(tmp_path, files, {"pkg/work.py": SKIPPING}, focus="pkg/work.py:total")
    print(r["verdict"], r.get("speedup"), r.get("reason"), r["checks"].get("tests"), r["checks"].get("another_input"))
    assert r["verdict"] == "incorrect" and not r["correct"], (
        f"a patch raising SkipTest for every n < 100,000 was {r['verdict']} {r.get('speedup')}x, "
        f"tests {r['checks'].get('tests')}")
