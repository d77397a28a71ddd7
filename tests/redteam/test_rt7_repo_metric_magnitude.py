"""Red team 7: a repository bench metric's magnitude is unbounded once kopt's clock says faster.

Round 6 made a metric's `faster` need kopt's clock around the bench to say `faster` too. A
candidate with a real 1.7x (part of its loop in closed form) that also slows the bench's
`time.perf_counter` (patched at import of the module under optimization) to 0.02 had the clock
at 1.76x, so the metric's 92.4x (CI 82.9-102.8) stood, under the 100x warning: the
agreement factor (3x) only applies when the clock does not say faster.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.redteam._work_repo import work_repo
from tests.redteam.test_repo_attacks import patch_of

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

PY = sys.executable
FASTER_AND_SLOWED_CLOCK = '''import time as _time

_clock = _time.perf_counter
_base = _clock()
_time.perf_counter = lambda: _base + (_clock() - _base) * 0.02

_P = [(i * i) % 7 for i in range(7)]


def total(n):
    head = (n * 2 // 5) // 7 * 7
    s = sum(_P) * (head // 7)
    for i in range(head, n):
        s += (i * i) % 7
    return s
'''


def _repo(root: Path) -> Path:
    return work_repo(root, "import time\nfrom lib.work import total\nt0 = time.perf_counter()\ns = 0\n"
                     "for _ in range(4):\n    s += total(600000)\nprint(f'sum {s}')\n"
                     "print(f'time_ms: {(time.perf_counter() - t0) * 1000:.3f}')\n")


def test_a_metric_far_past_the_clock_is_not_reported(tmp_path: Path):
    from kopt.agent.targets.repo.repo_target import RepoTarget

    repo = _repo(tmp_path / "user")
    t = RepoTarget.from_options(repo, test=f"{PY} -m pytest -q -p no:cacheprovider tests", bench=f"{PY} bench.py",
                                bench_metric=r"time_ms: ([\d.]+)")
    t.min_rounds, t.max_rounds, t.timing_budget_s = 3, 5, 20.0
    r = t.evaluate(patch_of(repo, tmp_path, {"lib/work.py": FASTER_AND_SLOWED_CLOCK}), [str(tmp_path / "run")])
    if r["verdict"] == "faster":
        assert r["speedup"] <= 3.0 * r["checks"]["wall_speedup"], r
