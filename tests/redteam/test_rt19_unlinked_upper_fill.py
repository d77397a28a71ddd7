"""Red team 19: a file made in the overlay, unlinked and held open, is not counted by the tree
growth cap. Under jail.sh -o, the worker's fd points at an overlay inode whose st_dev is the
overlay's anonymous device, not the host disk's; `Worker.unlinked_mb(tree)` compares against
the host tree's st_dev, so it skips it (it caught exactly this in a tree written in place,
red team 11). The blocks sit on the host disk, in the upper folder's filesystem, until the
worker ends: `fallocate` reserves any amount at once, far past KOPT_TREE_GROWTH_MB.
Kept small here (300 MB against a 20 MB cap). Fix: a deleted file the worker holds counts
when its path is under the tree, whatever its device (`local._unlinked_files`)."""
from __future__ import annotations

import shutil
import sys
import textwrap

import pytest

from benchmarks.studies.repo_targets import python_repo
from kopt.agent.targets.repo import shell_commands
from kopt.agent.targets.repo.fresh import FreshRuns
from kopt.agent.targets.repo.repo_target import RepoTarget
from kopt.agent.targets.repo.worktree import Workspace, head_commit
from kopt.sandboxes.jail_probe import REFUSED, overlay_works
from tests.redteam._work_repo import WORK, work_repo
from tests.redteam.test_repo_attacks import patch_of

PY = sys.executable
pytestmark = [
    pytest.mark.skipif(not shutil.which("git"), reason="git missing"),
]

# 300 MB reserved in the tree, unlinked at once (between two polls of the cap), held 2 s
FILL = textwrap.dedent("""\
    import os, time
    fd = os.open("big", os.O_CREAT | os.O_WRONLY, 0o600)
    os.posix_fallocate(fd, 0, 300 << 20)
    os.unlink("big")
    time.sleep(2)
    """)


@pytest.fixture
def small_cap(monkeypatch):
    if not overlay_works():
        pytest.skip(f"this host's jail gives no overlay: {REFUSED.get('overlay')}")
    monkeypatch.setattr(shell_commands, "TREE_GROWTH_MB", 20)


def test_a_run_cannot_hold_an_unlinked_file_past_the_cap(small_cap, tmp_path):
    repo = python_repo(tmp_path / "user", n=10)
    ws = Workspace(repo, head_commit(repo), tmp_path / "ws")
    runs = FreshRuns(ws, ws.tree_for(""), [])
    try:
        assert runs.throwaway
        r = runs.run(f"{PY} -c '{FILL}'", 60)
        assert not r.ok and "grew its tree" in r.output, r.output
    finally:
        runs.close()


def test_a_candidate_holding_an_unlinked_file_is_stopped(small_cap, tmp_path):
    """The same, from a patch through `evaluate`: the candidate's module fills the disk at import."""
    repo = work_repo(tmp_path / "user", "from lib.work import total\nprint(total(200000))\n")
    patch = patch_of(repo, tmp_path, {"lib/work.py": FILL + WORK})
    t = RepoTarget.from_options(repo, test=f"{PY} -m pytest -q -p no:cacheprovider tests",
                                bench=f"{PY} bench.py", focus="lib/work.py:total")
    t.min_rounds, t.max_rounds, t.timing_budget_s = 3, 3, 5.0
    res = t.evaluate(patch, [str(tmp_path / "run")])
    assert res["verdict"] != "faster"
    assert "grew its tree" in (res.get("reason") or ""), res
