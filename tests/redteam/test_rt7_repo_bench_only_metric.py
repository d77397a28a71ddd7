"""Red team 7: a bench that prints only its metric checks nothing, yet the output check says
"same as the original's".

Code that is right only under the test runner (`if "pytest" not in sys.modules: return 0`)
passes the tests, and a bench whose whole output is `time_ms: X` (masked) cannot tell: the
candidate was `correct`, `faster` 91810x, `checks.output` "same as the original's (metric
masked)", a >100x warning the only sign. With nothing but the metric to compare, the bench
cannot vouch for the answer: such a `faster` should not be claimed as verified.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.redteam._work_repo import WORK, work_repo
from tests.redteam.test_repo_attacks import patch_of

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

PY = sys.executable
RIGHT_ONLY_UNDER_PYTEST = "import sys\n\n\n" + WORK.replace(
    "    s = 0\n", "    if 'pytest' not in sys.modules:\n        return 0\n    s = 0\n", 1)


def _repo(root: Path) -> Path:
    return work_repo(root, "import time\nfrom lib.work import total\nt0 = time.perf_counter()\n"
                     "for _ in range(4):\n    total(200000)\n"
                     "print(f'time_ms: {(time.perf_counter() - t0) * 1000:.3f}')\n")


def test_a_metric_only_bench_does_not_verify_a_pytest_only_answer(tmp_path: Path):
    from kopt.agent.targets.repo.repo_target import RepoTarget

    repo = _repo(tmp_path / "user")
    t = RepoTarget.from_options(repo, test=f"{PY} -m pytest -q -p no:cacheprovider tests", bench=f"{PY} bench.py",
                                bench_metric=r"time_ms: ([\d.]+)")
    t.min_rounds, t.max_rounds, t.timing_budget_s = 3, 5, 10.0
    r = t.evaluate(patch_of(repo, tmp_path, {"lib/work.py": RIGHT_ONLY_UNDER_PYTEST}), [str(tmp_path / "run")])
    assert r["verdict"] != "faster", r
