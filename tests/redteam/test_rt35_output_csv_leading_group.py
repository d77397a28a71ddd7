"""Red team 35, repository target, output check: a CSV row `check,ms` whose first field has
1-3 digits and whose timing has a 3-digit integer part (`001,361.4`: total(6000000) ends in 001) reads as ONE grouped
number (NUMBER: `\\d{1,3}(?:,\\d{3})+(?!\\d)(?:\\.\\d*)?`). The timing varies between the
original's runs, so the whole number is masked; `steady` keeps only trailing comma groups
alike in every run, and the last group (`361.4`) always differs, so the checksum in front is
masked with the time. A patch returning `2 * n` at bench sizes (right at the test's n = 1000)
and holding its runtime above 100 ms prints `000,150.3`: judged `faster` and correct.
Observed: `faster`, correct. Expected: `incorrect` (the checksum column is the answer)."""

from __future__ import annotations

from tests.redteam._work_repo import WORK, judge

BENCH = (
    "import time\nfrom lib.work import total\n\nn = 6000000\nt0 = time.perf_counter()\nr = total(n)\n"
    'ms = (time.perf_counter() - t0) / 0.001\nprint("check,ms")\nprint(f"{str(r)[-3:]},{ms:.1f}")\n'
)

WRONG = (
    "import time\n\n\ndef total(n):\n    if n >= 100000:  # wrong: the sum is not 2n\n"
    "        time.sleep(0.15)\n        return 2 * n\n" + WORK.split("\n", 1)[1]
)


def test_checksum_grouped_with_the_timing_is_compared(tmp_path):
    files = {
        "lib/__init__.py": "",
        "lib/work.py": WORK,
        "bench.py": BENCH,
        "test_work.py": "from lib.work import total\n\n\ndef test_total():\n"
        "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n",
    }
    res = judge(tmp_path, files, {"lib/work.py": WRONG}, focus="lib/work.py:total")
    assert not (res["verdict"] == "faster" and res["correct"]), {
        k: res.get(k) for k in ("verdict", "correct", "speedup", "reason", "checks")
    }
