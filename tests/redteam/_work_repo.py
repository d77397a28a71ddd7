"""The small Python repository the repository red-team tests attack: `lib.work.total(n)`, a
test that checks it at n = 1000, and a bench each test writes for its attack; and `judge`, which
builds a repository of its own and judges one patch of it (red teams 30-32)."""
from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.studies.repo_targets import commit_all
from kopt.agent.targets.repo.repo_target import RepoTarget
from tests.redteam.test_repo_attacks import patch_of

# the function red teams 30-32 attack, with its docstring
TOTAL_MOD7 = '''def total(n):
    """The sum of i * i % 7 over range(n)."""
    s = 0
    for i in range(n):
        s += i * i % 7
    return s
'''
WORK = "def total(n):\n    s = 0\n    for i in range(n):\n        s += (i * i) % 7\n    return s\n"
PY = sys.executable


def work_repo(root: Path, bench: str, extra: dict[str, str] | None = None) -> Path:
    """A committed repository at ROOT whose bench.py is BENCH (and the EXTRA files: path -> text)."""
    (root / "lib").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "lib" / "__init__.py").write_text("")
    (root / "lib" / "work.py").write_text(WORK)
    (root / "tests" / "test_work.py").write_text(
        "from lib.work import total\n\n\ndef test_total():\n"
        "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n")
    (root / "bench.py").write_text(bench)
    for rel, text in (extra or {}).items():
        (root / rel).write_text(text)
    return commit_all(root)


def repo_target(tmp_path: Path, files: dict[str, str], focus: str, test: str | None = None,
                bench: str | None = None) -> RepoTarget:
    """A RepoTarget on a committed repository at TMP_PATH/user holding FILES (path -> text), its
    hot function FOCUS, judged in 3-5 rounds within 20 s. TEST defaults to pytest on test_work.py,
    BENCH to `python bench.py`."""
    root = tmp_path / "user"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    commit_all(root)
    t = RepoTarget.from_options(root, test=test or f"{PY} -m pytest -q -p no:cacheprovider test_work.py",
                                bench=bench or f"{PY} bench.py", focus=focus)
    t.min_rounds, t.max_rounds, t.timing_budget_s = 3, 5, 20.0
    return t


def evaluate(t: RepoTarget, tmp_path: Path, changed: dict[str, str], run: str = "run") -> dict:
    """T's result on the patch that writes CHANGED (path -> text) over its HEAD, run in TMP_PATH/RUN."""
    return t.evaluate(patch_of(t.root, tmp_path, changed), [str(tmp_path / run)])


def judge(tmp_path: Path, files: dict[str, str], changed: dict[str, str], focus: str, test: str | None = None,
          bench: str | None = None) -> dict:
    """The result on the patch that writes CHANGED over `repo_target(tmp_path, files, focus, test, bench)`."""
    return evaluate(repo_target(tmp_path, files, focus, test, bench), tmp_path, changed)
