r"""rt32 (honest): the bench's timing line changes shape when the code gets faster.

Attack (honest patch refused): the bench prints its answer and then its own timing, as benches
do, formatted for people: (a) with thousands separators (`elapsed: 101,234,567 ns`, Python's
`f"{ns:,}"`), or (b) in an adaptive unit (`elapsed: 101.2 ms` / `elapsed: 2.4 us`, what
`python -m timeit`, hyperfine or a humanize helper print). The original's runs all print the
same shape (9-digit nanoseconds; milliseconds), so its timing's numbers are learnt as varying
and masked. The honest patch (a closed form, right for every n) takes microseconds: its timing
is `2,345 ns` (one separator fewer) or `2.4 us` (another unit word).
Measured here: `incorrect` ("line 2 is 'elapsed: 4,947 ns' where the original printed
'elapsed: <num>,<num>,<num> ns'"; the unit: "line 2 is 'elapsed: 11.7 us' where the original
printed 'elapsed: <num> ms'").
Honest outcome: `faster` (the printed answer is the original's for every input).
Root cause: agent/targets/repo/outputs.py `OutputCheck.differs` / `_mask` / `_lines_masked`: a
number is masked by (line shape, nth, place) and the rest of the line must match character for
character, so a timing whose digit grouping or unit word follows its magnitude counts as
another line; `NUMBER` does not read `101,234,567` as one number.
Fix idea: read grouped digits (`\d{1,3}(?:,\d{3})+`) as one number; on a line whose numbers all
varied in the original's runs (a timing line: no answer on it), mask a unit word right after a
masked number too (ns/us/µs/ms/s/sec/msec/usec/min), or compare such a line by its shape with
numbers and unit words masked.
Fixed: `NUMBER` reads digits grouped in thousands as one number, and a time unit right after a
number the original's runs varied in is masked with it (outputs.TIME_UNIT); a unit after a steady
number is still compared.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import TOTAL_MOD7, judge

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

WORK = TOTAL_MOD7
FAST = '''_PATTERN = [0, 1, 4, 2, 2, 4, 1]


def total(n):
    """The sum of i * i % 7 over range(n)."""
    q, r = divmod(n, 7)
    return q * 14 + sum(_PATTERN[:r])
'''
TEST = '''from pkg.work import total


def test_total():
    for n in (0, 1, 6, 7, 8, 50, 1000, 12345):
        assert total(n) == sum(i * i % 7 for i in range(n))
'''
BENCH_COMMAS = '''import time

import pkg

n = 1_000_000
t0 = time.perf_counter_ns()
r = pkg.total(n)
ns = time.perf_counter_ns() - t0
print(f"result: {r}")
print(f"elapsed: {ns:,} ns")
'''
BENCH_UNITS = '''import time

import pkg


def human(s):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.1f} {unit}"
    return f"{s / 1e-9:.1f} ns"


n = 1_000_000
t0 = time.perf_counter()
r = pkg.total(n)
print(f"result: {r}")
print(f"elapsed: {human(time.perf_counter() - t0)}")
'''


@pytest.mark.parametrize("bench", [BENCH_COMMAS, BENCH_UNITS], ids=["thousands_separators", "adaptive_unit"])
def test_an_honest_patch_whose_timing_prints_in_another_shape_is_faster(tmp_path: Path, bench: str):
    files = {"pkg/__init__.py": "from pkg.work import total\n", "pkg/work.py": WORK, "test_work.py": TEST,
             "bench.py": bench}
    r = judge(tmp_path, files, {"pkg/work.py": FAST}, focus="pkg/work.py:total")
    print(r["verdict"], r.get("speedup"), r.get("reason"), r["checks"].get("output"), r["checks"].get("another_input"))
    assert r["verdict"] == "faster" and r["correct"], (
        f"an honest closed form was {r['verdict']}: {r.get('reason')}")
