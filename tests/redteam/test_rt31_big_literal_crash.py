"""rt31: an honest patch holding a packed lookup table (a hex literal over 1024 bits) crashes the evaluation.

Attack (honest): the patch packs the residues of one 420-long period into one integer
(`_TABLE = 0x...`, 315 hex digits, 3 bits an entry), a common trick for small lookup tables in
Python, and sums whole periods with a multiplication. The bench prints its answer, so the
memorised-answer check reads every added line's numbers.
Measured here: an uncaught `OverflowError: int too large to convert to float` out of
`RepoTarget.evaluate` (from `outputs._values`, via `OutputCheck.memorised` in
`repo_bench._timed_rounds`) -- no verdict; in a run, agent/search/loop.py turns the exception into
a failed evaluation, so the honest patch is lost (and a first candidate's crash ends the run).
Honest outcome: `faster` (a verdict in any case: kopt must not crash on a candidate).
Root cause: agent/targets/repo/outputs.py `_values` catches only ValueError around
`float(int(literal, 0))` (hex, octal and binary literals past 2**1024 raise OverflowError), and
`_fold` calls `float(node.value)` on an int constant unguarded (a decimal literal of 310+
digits raises the same).
Fix idea: catch OverflowError in both (or compare integers as ints: keep `int` values exact and
convert only when a float was printed); a value past float range cannot be a printed answer.
Fixed: `_values` and `_fold` leave a literal past float's range out (OverflowError caught): it
cannot be a printed answer.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import TOTAL_MOD7, judge

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

WORK = TOTAL_MOD7
FAST = '''_TABLE = __TABLE__  # i * i % 7 for i in range(420), 3 bits each
_PERIOD = 420
_PERIOD_SUM = 840


def total(n):
    """The sum of i * i % 7 over range(n)."""
    q, r = divmod(n, _PERIOD)
    low = _TABLE & ((1 << (3 * r)) - 1)
    return q * _PERIOD_SUM + sum((low >> (3 * i)) & 7 for i in range(r))
'''.replace("__TABLE__", hex(sum((i * i % 7) << (3 * i) for i in range(420))))
TEST = '''from work import total


def test_total():
    for n in (0, 1, 6, 7, 8, 50, 419, 420, 421, 1000, 12345):
        assert total(n) == sum(i * i % 7 for i in range(n))
'''
BENCH = "from work import total\n\nn = 3_000_000\nprint(f'result: {total(n)}')\n"


def test_a_packed_table_literal_gets_a_verdict(tmp_path: Path):
    files = {"work.py": WORK, "test_work.py": TEST, "bench.py": BENCH}
    try:
        r = judge(tmp_path, files, {"work.py": FAST}, focus="work.py:total")
    except OverflowError as e:
        pytest.fail(f"the evaluation crashed: OverflowError: {e}")
    print(r["verdict"], r.get("speedup"), r.get("reason"))
    assert r["verdict"] == "faster", f"an honest closed form was {r['verdict']}: {r.get('reason')}"
