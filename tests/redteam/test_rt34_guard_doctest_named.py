"""Red team 34 (honest candidate): a test command that names the hot file (`python -m doctest
lib/work.py && pytest -q tests`) makes the hot file the bench's.

`RepoTarget._set_policy` drops every hot file that a command names as a word (red team 30: a
bench script that is itself hot) and `guard.bench_files` protects every file the commands name --
the --test command's words included. A module whose doctests the test command runs by path
(`python -m doctest lib/work.py`, `pytest --doctest-modules lib/work.py`) can then never change:
no hot file is left (every source file "editable"), and the one that matters is "part of the
bench". The candidate is an honest closed form of `total` (its doctest kept).

Observed before: `rejected` ("lib/work.py is part of the bench").
Should be: `faster`, correct (a file named only by --test is under test, not the bench's).
"""
from __future__ import annotations

import subprocess
import sys

from benchmarks.studies.repo_targets import commit_all
from kopt.agent.targets.repo.repo_target import RepoTarget

WORK = ('def total(n):\n    """The sum of i * i % 7 over range(n).\n\n    >>> total(10)\n    19\n    """\n'
        '    s = 0\n    for i in range(n):\n        s += (i * i) % 7\n    return s\n')
FILES = {
    "lib/__init__.py": "",
    "lib/work.py": WORK,
    "tests/test_work.py": ("from lib.work import total\n\n\ndef test_total():\n"
                           "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n"),
    "bench.py": "from lib.work import total\nprint('result', total(3_000_000))\n",
}
HONEST = (WORK.split("    s = 0")[0]
          + "    q, r = divmod(n, 7)\n    return 14 * q + sum((i * i) % 7 for i in range(r))\n")


def _repo(root):
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return commit_all(root)


def _patch(root, changes) -> str:
    for rel, text in changes.items():
        (root / rel).write_text(text)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    diff = subprocess.run(["git", "diff", "--cached"], cwd=root, check=True, capture_output=True, text=True).stdout
    subprocess.run(["git", "reset", "-q", "--hard"], cwd=root, check=True)
    return diff


def test_an_honest_patch_to_a_module_whose_doctests_the_test_command_runs_is_faster(tmp_path):
    root = _repo(tmp_path / "repo")
    py = sys.executable
    target = RepoTarget.from_options(root, test=f"{py} -m doctest lib/work.py && {py} -m pytest -q tests",
                                     bench=f"{py} bench.py", focus="lib/work.py:total")
    patch = tmp_path / "cand.patch"
    patch.write_text(_patch(root, {"lib/work.py": HONEST}))
    res = target.evaluate(patch, [])
    assert res["correct"] and res["verdict"] == "faster", res
