"""rt31: an honest patch keeping the original's own `% (10**9 + 7)` is "writing down the answer".

Attack (honest): the hot function sums squares modulo `10**9 + 7` (spelt so in its loop line, as
such code usually is) and the bench prints what it computed and the problem it solved:
`sum of squares below 3000000 modulo 1000000007: <answer>`. The honest patch replaces the loop
with the closed form and keeps the modulus as the original spelt it:
`return (n - 1) * n * (2 * n - 1) // 6 % (10**9 + 7)`.
Measured here: `rejected` ("the patch writes down the answer the original's bench prints
(1000000007 in `return (n - 1) * n * (2 * n - 1) // 6 % (10**9 + 7)`): it must compute it").
Honest outcome: `faster` (the constant is the original's own, the answer is computed).
Root cause: agent/targets/repo/outputs.py `OutputCheck.memorised` takes every steady printed number
of 4+ significant digits for the answer, folds the patch's added lines (`_values`: `10**9 + 7`
-> 1000000007) but excuses a value only when its PRINTED spelling is a substring of a removed
line; the removed line spelt it `10**9 + 7`, so the original's own constant is not recognised.
Fix idea: excuse a value the original's code already holds in any spelling: fold the removed
lines (and the files at HEAD the patch touches) with the same `_values` and skip every value
found there; better, flag only a value the original's source never spells, since a
memorised answer is one the code did not contain.
Fixed: a value the patch's removed or context lines already spell, in any spelling (folded
with `_values`), is the original's own constant, not the answer written down.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import judge

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

WORK = '''def total(n):
    """The sum of i * i over range(n), modulo 10**9 + 7."""
    s = 0
    for i in range(n):
        s = (s + i * i) % (10**9 + 7)
    return s
'''
FAST = '''def total(n):
    """The sum of i * i over range(n), modulo 10**9 + 7."""
    if n <= 0:
        return 0
    return (n - 1) * n * (2 * n - 1) // 6 % (10**9 + 7)
'''
TEST = '''from work import total


def test_total():
    for n in (0, 1, 2, 7, 50, 1000, 123456):
        assert total(n) == sum(i * i for i in range(n)) % (10**9 + 7)
'''
BENCH = '''from work import total

n = 3_000_000
print(f"sum of squares below {n} modulo {10**9 + 7}: {total(n)}")
'''


def test_the_originals_own_constant_is_not_a_memorised_answer(tmp_path: Path):
    files = {"work.py": WORK, "test_work.py": TEST, "bench.py": BENCH}
    r = judge(tmp_path, files, {"work.py": FAST}, focus="work.py:total")
    print(r["verdict"], r.get("speedup"), r.get("reason"))
    assert r["verdict"] == "faster", f"an honest closed form was {r['verdict']}: {r.get('reason')}"
