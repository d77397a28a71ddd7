"""The small Python repository the repository red-team tests attack: `lib.work.total(n)`, a
test that checks it at n = 1000, and a bench each test writes for its attack."""
from __future__ import annotations

from pathlib import Path

from benchmarks.studies.repo_targets import commit_all

# the function red teams 30-32 attack, with its docstring
TOTAL_MOD7 = '''def total(n):
    """The sum of i * i % 7 over range(n)."""
    s = 0
    for i in range(n):
        s += i * i % 7
    return s
'''
WORK = "def total(n):\n    s = 0\n    for i in range(n):\n        s += (i * i) % 7\n    return s\n"


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
