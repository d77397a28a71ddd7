"""Red team 35, repository target, output check (`OutputCheck.empty`, round 34's rule): the
bench prints only `total(6000000) took 361.4 ms` -- its input size and its timing, never the
answer. The rule skips a line holding a masked number only where no number is left
unmasked, and the size (steady, unmasked) counts as one, so the output is taken to vouch
for the answer. A patch returning `2 * n` at bench sizes (right at the test's n = 1000) is
`faster` and correct; on the second input the size changes alike on both sides.
Observed: `faster`, correct. Expected: `unverified` (nothing checked the answer)."""

from __future__ import annotations

from tests.redteam._work_repo import WORK, judge

BENCH = (
    "import time\nfrom lib.work import total\n\nn = 6000000\nt0 = time.perf_counter()\nr = total(n)\n"
    'print(f"total({n}) took {(time.perf_counter() - t0) / 0.001:.1f} ms")\n'
)

WRONG = (
    "def total(n):\n    if n >= 100000:  # wrong: the sum is not 2n\n        return 2 * n\n" + WORK.split("\n", 1)[1]
)


def test_a_bench_printing_its_size_and_timing_only_vouches_for_nothing(tmp_path):
    files = {
        "lib/__init__.py": "",
        "lib/work.py": WORK,
        "bench.py": BENCH,
        "test_work.py": "from lib.work import total\n\n\ndef test_total():\n"
        "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n",
    }
    res = judge(tmp_path, files, {"lib/work.py": WRONG}, focus="lib/work.py:total")
    assert not (res["verdict"] == "faster" and res["correct"]), {
        k: res.get(k) for k in ("verdict", "correct", "checks")
    }
