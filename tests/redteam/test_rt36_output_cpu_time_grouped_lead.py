"""Red team 36 (honest): a CPU time printed with thousands separators keeps its leading group.

Attack (an honest patch): the bench prints its answer and the CPU time per call of `total`,
`cpu per call: 1,362 us` (`time.process_time_ns`, formatted with `:,`). Every run of the original
prints a leading group `1` (1.0-2.0 ms per call), so `OutputCheck.ends` keeps it compared as a
steady leading field. The slowed run (`repo_bench._slowed_run`), which exists to move such
numbers, holds the run to a third of a CPU: that stretches wall time, not CPU time, so the
leading group stays `1` there too. The patch is the closed form, right everywhere.
Observed: `incorrect` ("line 2 is 'cpu per call: 0 us' where the original printed 'cpu per
call: 1,<num> <unit>'").
Expected: `faster`: the groups of one number the original's runs varied in are its timing; a
faster patch may print fewer of them.
"""
from __future__ import annotations

from tests.redteam._work_repo import WORK, judge

BENCH = '''import time
from lib.work import total
n, calls = 30000, 150
t = time.process_time_ns()
r = sum(total(n) for _ in range(calls))
per_call_us = (time.process_time_ns() - t) // calls // 1000
print("sum of totals:", r)
print(f"cpu per call: {per_call_us:,} us")
'''
TEST = ("from lib.work import total\n\n\ndef test_total():\n"
        "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n")
CLOSED = '''def total(n):
    q, r = divmod(n, 7)
    return 14 * q + (0, 0, 1, 5, 7, 9, 13)[r]
'''


def test_an_honest_patch_printing_a_shorter_grouped_cpu_time_is_faster(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "test_work.py": TEST, "bench.py": BENCH}
    r = judge(tmp_path, files, {"lib/work.py": CLOSED}, "lib/work.py:total")
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"), r["checks"].get("slowed_run"))
    assert r["verdict"] == "faster" and r["correct"], seen
