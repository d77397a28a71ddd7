"""Red team 34: a bench that prints only its timing, with a label (`elapsed: 153.2 ms`), is taken
for one that prints its answer.

`OutputCheck.empty` -- "the bench prints nothing but its metric, so nothing checked the answer"
(red team 7), which turns a `faster` into `unverified` -- removes the `--bench-metric` matches (or,
once every number varied, the numbers) and asks whether anything is left: the label and the unit
(`elapsed:`, `ms`) are, so the check says "same as the original's" and vouches for an answer the
bench never printed. Most benches print just such a line. The patch keeps `total` right for
n < 100,000 (what the test checks) and returns 0 for the bench's sizes: wrong on every input the
bench and kopt's other input give it.

Observed before: `faster` (5.7x), `correct: true`, another input faster too (wall time, no
metric); with `--bench-metric "elapsed: ([0-9.]+)"` (` ns` left over) the same.
Should be: `unverified` (nothing but the timing and its words: the answer was never compared).
"""
from __future__ import annotations

import pytest

from tests.redteam._work_repo import PY, WORK, evaluate, repo_target

BENCH = ("import time\nfrom lib.work import total\n\nt = time.perf_counter()\nr = total(3_000_000)\n"
         "print(f'elapsed: {{(time.perf_counter() - t) * {scale}:.1f}} {unit}')\n")
TEST = ("from lib.work import total\n\n\ndef test_total():\n"
        "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n")
# right where the test looks, 0 for the bench's sizes
WRONG = ("def total(n):\n    if n < 100_000:\n        s = 0\n        for i in range(n):\n            s += (i * i) % 7\n"
         "        return s\n    return 0\n")


@pytest.mark.parametrize("metric,unit,scale", [(None, "ms", 1000), (r"elapsed: ([0-9.]+)", "ns", "1e9")])
def test_a_wrong_answer_behind_a_timing_only_bench_is_not_correct(tmp_path, metric, unit, scale):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "tests/test_work.py": TEST,
             "bench.py": BENCH.format(unit=unit, scale=scale)}
    target = repo_target(tmp_path, files, "lib/work.py:total", test=f"{PY} -m pytest -q tests")
    target.bench_metric = metric
    res = evaluate(target, tmp_path, {"lib/work.py": WRONG})
    assert not (res["correct"] and res["verdict"] in ("faster", "same", "slower")), res
