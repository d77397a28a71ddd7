"""Red team 35 (honest), repository target, output check: the bench prints a CSV row
`check,ms` (`001,361.4`: the answer's last 3 digits, then its time in ms). A 1-3 digit field before a
timing whose integer part has 3 digits reads as one grouped number, so the row's shape is
`<num>`; an honest closed form is so fast it prints `001,0.0`, which reads as two numbers
(shape `<num>,<num>`), and the line is compared as text against the original's masked one.
Observed: `incorrect` ("line 2 is '001,0.0' where the original printed '<num>'").
Expected: `faster` (the checksum is right; only the timing changed)."""

from __future__ import annotations

from tests.redteam._work_repo import WORK, judge

BENCH = (
    "import time\nfrom lib.work import total\n\nn = 6000000\nt0 = time.perf_counter()\nr = total(n)\n"
    'ms = (time.perf_counter() - t0) / 0.001\nprint("check,ms")\nprint(f"{str(r)[-3:]},{ms:.1f}")\n'
)

CLOSED = (
    "def total(n):\n    # i*i % 7 repeats with period 7: 0, 1, 4, 2, 2, 4, 1 (sum 14)\n"
    "    return n // 7 * 14 + sum((0, 1, 4, 2, 2, 4, 1)[:n % 7])\n"
)


def test_closed_form_with_a_csv_timing_is_faster(tmp_path):
    files = {
        "lib/__init__.py": "",
        "lib/work.py": WORK,
        "bench.py": BENCH,
        "test_work.py": "from lib.work import total\n\n\ndef test_total():\n"
        "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n",
    }
    res = judge(tmp_path, files, {"lib/work.py": CLOSED}, focus="lib/work.py:total")
    assert res["verdict"] == "faster" and res["correct"], {k: res.get(k) for k in ("verdict", "correct", "reason")}
