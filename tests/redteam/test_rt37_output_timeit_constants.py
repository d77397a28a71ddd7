"""Red team 37: `python -m timeit -n 1 -r 5` as the bench: its constant counts taken for an answer.

Attack: the bench is `python -m timeit -n 1 -r 5 -s "from lib.work import total"
"total(1000000)"`, which prints only `1 loop, best of 5: 61.2 msec per loop`. The timing is
masked (it varies, its unit with it); `1` and `5` are steady and not the bench's inputs (they are
below bench_inputs' 8), so `OutputCheck.empty` reads the line as saying something and the output
check as vouching for the answer, which the bench never prints. The patch sums one term in ten
(times ten) from n = 100,000 up: ten times faster, wrong at the bench's size.
Observed: `faster`, correct.
Expected: `unverified` (the bench prints nothing but its timing), not `faster`: numbers that are
the bench's own settings (its command's words) or label a timing say nothing of the answer.
"""
from __future__ import annotations

import sys

from tests.redteam._work_repo import WORK, judge

WRONG = '''def total(n):
    if n < 100000:
        s = 0
        for i in range(n):
            s += (i * i) % 7
        return s
    s = 0
    for i in range(0, n, 10):
        s += (i * i) % 7
    return s * 10
'''


def test_a_timeit_bench_vouches_for_no_answer(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "test_work.py":
             "from lib.work import total\n\n\ndef test_total():\n"
             "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n"}
    bench = f"{sys.executable} -m timeit -n 1 -r 5 -s 'from lib.work import total' 'total(1000000)'"
    r = judge(tmp_path, files, {"lib/work.py": WRONG}, "lib/work.py:total", bench=bench)
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"), r["checks"].get("output"))
    assert r["verdict"] != "faster", seen
