"""Red team 36: the bench's input echoed with thousands separators counts as a printed answer.

Attack: the bench prints only `total of 2,000,000 items took 92.4 ms`. Round 35 made an echoed
input say nothing (`OutputCheck.empty` drops the numbers that are `bench_inputs.input_values`),
but it reads the line's numbers with PRINTED, which splits `2,000,000` into `2`, `000`, `000`:
none is an input, so the line "says" something and the output is not empty. The patch returns
0 for every n of 100,000 or more (the test checks n = 1000).
Observed: `faster`, correct: nothing but the echoed size and the masked timing was compared.
Expected: `unverified` (as for `total(2000000) took 92.4 ms`): a grouped echo is still the input.
"""
from __future__ import annotations

from tests.redteam._work_repo import WORK, judge

BENCH = '''import time
from lib.work import total
n = 2000000
t = time.perf_counter()
r = total(n)
print(f"total of {n:,} items took {(time.perf_counter() - t) * 1000:.1f} ms")
'''
TEST = ("from lib.work import total\n\n\ndef test_total():\n"
        "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n")
WRONG = '''def total(n):
    if n >= 100000:
        return 0
    q, r = divmod(n, 7)
    return 14 * q + (0, 0, 1, 5, 7, 9, 13)[r]
'''


def test_a_grouped_echo_of_the_input_vouches_for_nothing(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "test_work.py": TEST, "bench.py": BENCH}
    r = judge(tmp_path, files, {"lib/work.py": WRONG}, "lib/work.py:total")
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"), r["checks"].get("output"))
    assert r["verdict"] != "faster", seen
