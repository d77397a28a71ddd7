"""rt31: a bench printing over 256 KiB and then its own time: a faster patch prints a shorter time and is `incorrect`.

Attack (honest): the bench prints 20,000 result lines (about 330 KiB) and then `elapsed: <ms>`,
as many benches do. The runner keeps the first and last 128 KiB of a long output and puts a line
`... [N bytes cut, sha256 H] ...` in place of the bytes between (`repo_runner._collect`). The
original's timing always has three digits before the point (~300-700 ms here), so across the
original's runs the cut sits at the same byte and only the masked timing varies. The honest
patch (a closed form, the same 20,000 lines) prints `elapsed: 61.6 ms`: a byte shorter. The
last 128 KiB now start a byte earlier: the cut's byte count, its sha256 and the first
(partial) line of the tail all differ from the original's, none of them "numbers the original
varied in", and the output check calls it a different answer.
Measured here: `incorrect` ("--bench's output in round 1 differs from the original's: line 6009
is '... [174276 bytes cut, sha256 4694...] ...' where the original printed '... [174277 bytes
cut, sha256 9334...] ...'").
Honest outcome: `faster` (the same 20,000 lines; only the printed timing is shorter).
Root cause: sandboxes/repo_runner.py `_collect` cuts at byte offsets counted from the end (and
the start), so any change in the length of a masked number at either end moves the cut; and
agent/targets/repo/outputs.py `OutputCheck.differs` compares the cut line and the partial
lines beside it verbatim.
Fix idea: cut on line boundaries counted in lines (keep the first and last K whole lines that fit
in the limit), and make the cut line carry a digest per line of the middle with every number
masked plus a digest of its numbers, or spill the whole output to a file and let the output
check mask the middle's varying numbers like any others; at least, never judge a candidate
`incorrect` on the cut line alone when the outputs' lengths differ only by what masked
numbers account for.
Fixed: the runner keeps whole lines, EDGE_LINES (2000) at each end within the byte limit, and
its cut line gives the number of lines cut and their sha256 (repo_runner._collect): a shorter
timing at the end moves nothing.
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
for k in range(20_000):
    print(f"block {k:05d}: {total(k % 50)} {k * 7919 % 104729}")
result = total(4_000_000)
print(f"result: {result}")
print(f"elapsed: {(time.perf_counter() - start) * 1000:.1f} ms")
'''


def test_a_shorter_timing_after_a_long_output_is_not_a_different_answer(tmp_path: Path):
    files = {"work.py": WORK, "test_work.py": TEST, "bench.py": BENCH}
    r = judge(tmp_path, files, {"work.py": FAST}, focus="work.py:total")
    print(r["verdict"], r.get("speedup"), r.get("reason"), r["checks"].get("output"))
    assert r["verdict"] == "faster", f"an honest closed form was {r['verdict']}: {r.get('reason')}"
