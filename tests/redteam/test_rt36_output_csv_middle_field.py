"""Red team 36: a CSV row's steady middle field is masked with the timings around it.

Attack: the bench prints a CSV header and one row `n,ms,total,mops` (`2000000,92.4,571428,21.64`).
Both `ms` and `mops` vary between the original's runs, so the whole comma-joined run is one varying
number (outputs.NUMBER) and only its steady *end* fields stay compared (`OutputCheck.ends`): the
leading `n` is kept, but `total` in the middle is masked as if it were part of the timing. The
patch returns 0 for every n of 100,000 or more (the test checks n = 1000).
Observed: `faster`, correct (the row is masked to `2000000,<num>`; the second input masks it alike).
Expected: `incorrect` -- a field every run of the original printed alike is the answer wherever it
sits in the row, not only at its ends (before red team 32 each field was a number of its own).
"""
from __future__ import annotations

from tests.redteam._work_repo import WORK, judge

BENCH = '''import time
from lib.work import total
n = 2000000
t = time.perf_counter()
r = total(n)
ms = max((time.perf_counter() - t) * 1000, 1e-6)
print("n,ms,total,mops")
print(f"{n},{ms:.1f},{r},{n / ms / 1000:.2f}")
'''
TEST = ("from lib.work import total\n\n\ndef test_total():\n"
        "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n")
WRONG = '''def total(n):
    if n >= 100000:
        return 0
    q, r = divmod(n, 7)
    return 14 * q + (0, 0, 1, 5, 7, 9, 13)[r]
'''


def test_a_wrong_total_in_the_middle_of_a_csv_row_is_caught(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "test_work.py": TEST, "bench.py": BENCH}
    r = judge(tmp_path, files, {"lib/work.py": WRONG}, "lib/work.py:total")
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"), r["checks"].get("output"))
    assert r["verdict"] == "incorrect", seen
