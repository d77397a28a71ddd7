"""rt30: on kopt's other bench input the printed timing moves to another line and is compared.

Attack (an honest patch, wrongly refused): the bench prints one line per block of its input
(`block k: <sum>`, n // 100,000 lines) and then its own timing, `elapsed: <ms>` (no
--bench-metric: the run is timed as a whole). On the bench's own input (n = 3,000,000) the
timing is line 30; the original's runs vary there, so `OutputCheck.learn` masks position
(30, 0). A faster candidate is then run on another input (`bench_inputs`: 3_000_000 redrawn in
[2.4M, 3M)), where the original prints 24-29 block lines and the timing sits on an earlier line.
`_check_pair` reuses the masks keyed by (line, place in the line) learnt on the first input
(`OutputCheck.against`), so the moved timing line is compared digit for digit and the honest
closed form is `incorrect`.
Measured here: `incorrect`, "with bench.py's 3_000_000 as 2898607: --bench's output differs from
the original's: line 30 is 'elapsed: 0.031 ms' where the original printed 'elapsed: 172.588 ms'";
the control (same bench without the timing line) `faster`.
Honest outcome: `faster` (the patch is exact for every n; the control without the timing
line shows it).
Root cause: agent/targets/repo/outputs.py `OutputCheck.against` / `_numbers` (masks keyed by
absolute line index) used by agent/targets/repo/repo_bench.py `_check_pair` on the bench's
other input, whose output has another number of lines.
Fix idea: on the other input, learn what varies from the original's own runs of that input
(run it twice or three times before judging, as the bench's own input does), or key the
masks by the line's masked text (its "shape", e.g. `elapsed: <num> ms`) rather than its index.
Fixed: a number is keyed by its line's shape, which of the lines of that shape it is on, and its
place in the line (outputs._numbers): the timing line is the first `elapsed: <num> ms` on either
input.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import judge

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

WORK = '''def block_sums(n, size=100_000):
    """For each block of `size` of range(n): the sum of i * i % 7."""
    out = []
    for start in range(0, n, size):
        s = 0
        for i in range(start, min(n, start + size)):
            s += i * i % 7
        out.append(s)
    return out
'''
HONEST = '''_PATTERN = [0, 1, 4, 2, 2, 4, 1]  # i * i % 7 repeats every 7


def _upto(m):
    q, r = divmod(m, 7)
    return q * 14 + sum(_PATTERN[:r])


def block_sums(n, size=100_000):
    """For each block of `size` of range(n): the sum of i * i % 7."""
    return [_upto(min(n, start + size)) - _upto(start) for start in range(0, n, size)]
'''
TEST = '''from pkg.work import block_sums


def test_block_sums():
    for n, size in ((1, 3), (50, 7), (1000, 100), (997, 64)):
        want = [sum(i * i % 7 for i in range(a, min(n, a + size))) for a in range(0, n, size)]
        assert block_sums(n, size) == want
'''
BENCH_TIMED = '''import time
import pkg

t0 = time.perf_counter()
sums = pkg.block_sums(3_000_000)
dt = time.perf_counter() - t0
for k, s in enumerate(sums):
    print(f"block {k}: {s}")
print(f"elapsed: {dt * 1000:.3f} ms")
'''
BENCH_PLAIN = BENCH_TIMED.replace('print(f"elapsed: {dt * 1000:.3f} ms")\n', "")


def _evaluate(tmp_path: Path, bench: str) -> dict:
    files = {"pkg/__init__.py": "from pkg.work import block_sums\n", "pkg/work.py": WORK, "test_work.py": TEST,
             "bench.py": bench}
    r = judge(tmp_path, files, {"pkg/work.py": HONEST}, focus="pkg/work.py:block_sums")
    print(r["verdict"], r.get("speedup"), r.get("reason"), r["checks"].get("another_input"))
    return r


def test_an_honest_patch_is_not_refused_when_the_timing_line_moves(tmp_path: Path):
    r = _evaluate(tmp_path, BENCH_TIMED)
    assert r["verdict"] == "faster" and r["correct"], f"honest closed form: {r['verdict']}: {r.get('reason')}"


def test_control_without_the_timing_line_is_faster(tmp_path: Path):
    r = _evaluate(tmp_path, BENCH_PLAIN)
    assert r["verdict"] == "faster" and r["correct"], f"honest closed form: {r['verdict']}: {r.get('reason')}"
