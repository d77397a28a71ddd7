"""A small committed repository from a dict of files, and a candidate patch evaluated against
it through the real repository target: what every repository red-team test starts from."""
from __future__ import annotations

from pathlib import Path

from benchmarks.studies.repo_targets import commit_all, git_run
from kopt.agent.targets.repo.repo_target import RepoTarget

PY_TEST = 'python3 -c "import test_lib"'
PY_BENCH = "python3 bench.py"


def make_repo(root: Path, files: dict[str, str]) -> Path:
    """ROOT with FILES (relative path -> text) in one commit."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return commit_all(root)


def diff_of(repo: Path, changes: dict[str, str]) -> str:
    """The unified diff that makes CHANGES (relative path -> new text) to REPO's commit; the tree
    is left as committed."""
    for name, text in changes.items():
        (repo / name).write_text(text)
    try:
        return git_run(repo, "diff")
    finally:
        git_run(repo, "checkout", "-q", "--", *changes)


def evaluate_patch(repo: Path, patch_text: str, test: str = PY_TEST, bench: str = PY_BENCH, **options) -> dict:
    """The repository target's verdict on PATCH_TEXT (a unified diff) against REPO's commit."""
    target = RepoTarget.from_options(repo, test=test, bench=bench, **options)
    patch = repo.parent / "candidate.patch"
    patch.write_text(patch_text)
    return target.evaluate(patch, [])
