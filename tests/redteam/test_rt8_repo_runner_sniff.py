"""Red team 8: code that tells the test run from the bench run, and holds the bench's answer.

The tests and the bench run the same code, but the code can ask which one runs it: under
pytest the original, otherwise `return <the bench's printed answer> if n == <its input> else n`.
The tests passed, the bench's output was "same as the original's", and the candidate was
`faster` 2.3x and correct, wrong for every other input (red team 7 caught this only where the
bench printed nothing but its metric). Now a patch whose added lines read which command runs
them (pytest, sys.modules, sys.argv, the environment, the stack) is rejected before any run.
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
ANSWER = sum((i * i) % 7 for i in range(200000))
SNIFF = f"    if 'pytest' not in sys.modules:\n        return {ANSWER} if n == 200000 else n\n"
ONLY_THE_BENCH_INPUT = "import sys\n\n\n" + WORK.replace("    s = 0\n", SNIFF + "    s = 0\n", 1)


def _repo(root: Path) -> Path:
    return work_repo(root, "from lib.work import total\nprint(total(200000))\n")


def test_code_that_tells_the_tests_from_the_bench_is_rejected(tmp_path: Path):
    from kopt.agent.targets.repo.repo_target import RepoTarget

    repo = _repo(tmp_path / "user")
    t = RepoTarget.from_options(repo, test=f"{PY} -m pytest -q -p no:cacheprovider tests", bench=f"{PY} bench.py")
    t.min_rounds, t.max_rounds, t.timing_budget_s = 3, 5, 10.0
    r = t.evaluate(patch_of(repo, tmp_path, {"lib/work.py": ONLY_THE_BENCH_INPUT}), [str(tmp_path / "run")])
    assert r["verdict"] == "rejected" and "which command runs it" in r["reason"], r
