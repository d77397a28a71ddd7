"""Red team, repository targets (issue 24, finding #6): a file the original's bench writes on
every run (`results.txt`) must not be kept between bench runs as if it were a build output,
or its contents -- written by the candidate's untimed warm run -- are a result cache the
candidate chose. Build outputs (a Makefile's `build/bench`) must still be kept, so a native
bench is not rebuilt inside its timing. Real repos, real sandboxed runs."""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from benchmarks.studies.repo_targets import cpp_repo, git_run, python_repo
from kopt.agent.targets.repo import worktree
from kopt.agent.targets.repo.fresh import FreshRuns
from tests.redteam.test_repo_attacks import FAST_BODY, SLOW, count_py, evaluate, patch_of, target_for

PY = sys.executable
pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git missing")

READS_RESULTS = count_py(
    "    try:\n        with open('results.txt') as f:\n            return int(f.read().split()[1])\n"
    "    except (OSError, IndexError, ValueError):\n        pass\n" + SLOW)


@pytest.fixture
def repo(tmp_path) -> Path:
    """The Python example whose bench also writes its answer to an ignored results.txt, every run."""
    root = python_repo(tmp_path / "user", n=1500)
    bench = (root / "bench.py").read_text() + 'with open("results.txt", "w") as f:\n    f.write(f"answer {pairs}\\n")\n'
    (root / "bench.py").write_text(bench)
    (root / ".gitignore").write_text("results.txt\n")
    git_run(root, "add", "-A")
    git_run(root, "commit", "-q", "-m", "bench writes results.txt")
    return root


def test_a_results_file_the_bench_rewrites_is_no_cache_for_the_candidate(repo, tmp_path):
    """count_pairs answering from results.txt came out `faster` (2.45x through kopt optimize)
    when results.txt, written by both warm runs, was put back before every timed run."""
    r = evaluate(target_for(repo), patch_of(repo, tmp_path, {"pairs/count.py": READS_RESULTS}), tmp_path)
    assert r["verdict"] in ("same", "slower"), r


def test_the_honest_rewrite_is_still_faster_there(repo, tmp_path):
    r = evaluate(target_for(repo), patch_of(repo, tmp_path, {"pairs/count.py": count_py(FAST_BODY)}), tmp_path)
    assert r["verdict"] == "faster", r


def _rewrites(repo: Path, bench: str) -> tuple[set[str], set[str]]:
    """(what a warm bench run wrote, what it wrote again with that put back) in a kopt tree of `repo`."""
    with tempfile.TemporaryDirectory() as tmp:
        ws = worktree.Workspace(repo, worktree.head_commit(repo), Path(tmp))
        runs = FreshRuns(ws, ws.tree_for(""), [])
        try:
            assert runs.run(bench, 120).ok
            first = set(runs.written)
            again, rewritten = runs.rewrites(bench, 120)
            assert again.ok, again.output
            assert runs.kept == [] and runs.written == first
            return first, rewritten
        finally:
            runs.close()


def test_only_the_results_file_is_written_again(repo):
    first, rewritten = _rewrites(repo, f"{PY} bench.py")
    assert "results.txt" in first and rewritten == {"results.txt"}, (first, rewritten)


@pytest.mark.skipif(not shutil.which("g++") or not shutil.which("make"), reason="no g++/make")
def test_a_native_build_output_is_still_kept(tmp_path):
    """make finds build/bench up to date when it is put back: kept, not rebuilt in the clock."""
    first, rewritten = _rewrites(cpp_repo(tmp_path / "user", n=300), "make -s bench")
    assert "build/bench" in first and rewritten == set(), (first, rewritten)
