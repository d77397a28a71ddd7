"""Red team 34: a CSV row read as digits grouped in thousands (outputs.NUMBER).

`outputs.NUMBER` takes `\\d{1,3}(?:,\\d{3})+` as one number (red team 32: `101,234,567 ns`), with no
boundary after the last group. A bench printing a CSV row `n,ms,checksum` (csv.writer, f-strings:
no spaces) with its time in whole milliseconds (under 1000) prints `1000000,152,1999998`, which
the check reads as `1000000`, `152,199` and `9998`: the timing varies, so `152,199` is masked, and
with it the checksum's first three digits.

wrong: `total` (right below 100,000, where the tests look) adds 10**6 to the closed form on the
bench's sizes: `1000000,0,2999998` reads `0,299` + `9998` and passes; on the other input too.
Observed before: `faster` (3.2x), `correct: true`. Should be: `incorrect` (the checksum differs).

honest: the same row with the time in microseconds (`n,us,checksum`): the original's time has 6
digits (no grouping), an honest closed form's has 1 (`1000000,5,1999998`: `5,199` + `9998`), so
the line has another shape and the honest patch is refused.
Observed before: `incorrect` ("line 2 is '1000000,5,1999998' where the original printed
'1000000,<num>,1999998'"). Should be: `faster`, correct.

Fix: a comma group only where the original printed one in that place (or a group must not be
followed by another digit / be the whole comma-separated field).
"""
from __future__ import annotations

from tests.redteam._work_repo import PY, WORK, judge

BENCH = ("import time\nfrom lib.work import total\n\nn = 1_000_000\nt = time.perf_counter()\nr = total(n)\n"
         "{unit} = int((time.perf_counter() - t) * {scale})\nprint('n,{unit},checksum')\n"
         "print(f'{{n}},{{{unit}}},{{r}}')\n")
TEST = ("from lib.work import total\n\n\ndef test_total():\n"
        "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n")
HONEST = "def total(n):\n    q, r = divmod(n, 7)\n    return 14 * q + sum((i * i) % 7 for i in range(r))\n"
WRONG = ("def total(n):\n    if n < 100_000:\n        s = 0\n        for i in range(n):\n            s += (i * i) % 7\n"
         "        return s\n    q, r = divmod(n, 7)\n    return 14 * q + sum((i * i) % 7 for i in range(r)) + 10**6\n")


def _evaluate(tmp_path, unit, scale, code):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "tests/test_work.py": TEST,
             "bench.py": BENCH.format(unit=unit, scale=scale)}
    return judge(tmp_path, files, {"lib/work.py": code}, "lib/work.py:total", test=f"{PY} -m pytest -q tests")


def test_a_wrong_checksum_after_a_millisecond_field_is_not_correct(tmp_path):
    res = _evaluate(tmp_path, "ms", 1000, WRONG)
    assert not (res["correct"] and res["verdict"] in ("faster", "same", "slower")), res


def test_an_honest_closed_form_with_a_microsecond_field_is_faster(tmp_path):
    res = _evaluate(tmp_path, "us", "1e6", HONEST)
    assert res["correct"] and res["verdict"] == "faster", res
