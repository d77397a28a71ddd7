"""Repository runs see their tree through an overlay (jail.sh -o, sandboxes/overlay_upper):
whatever a run does to the tree -- writes, deletions, renames, chmods, new and re-made
folders -- lands in a per-run upper folder, and the tree's own files and folders keep every
inode number, time and size. A reset had to guess these back (red teams 15-17 kept a bench's
answer in ctimes, inode numbers and folder sizes); now there is nothing to put back.
Real sandboxed runs in a real git tree; skipped only where the host's jail has no overlay."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from benchmarks.studies.repo_targets import python_repo
from kopt.agent.targets.repo.fresh import FreshRuns
from kopt.agent.targets.repo.worktree import Workspace, head_commit
from kopt.sandboxes import fs_walk
from kopt.sandboxes.jail_probe import REFUSED, overlay_works

pytestmark = [pytest.mark.skipif(not shutil.which("git"), reason="git missing")]

# everything a run can move in its tree's metadata, then a new file, a changed one, a
# deleted one and a folder deleted and made again (a new inode number for it on the host)
MESSY_RUN = ("chmod 600 bench.py && touch -d 2001-01-01 pairs/count.py && mv tests/test_count.py tests/moved.py"
             " && rm -rf pairs && mkdir pairs && echo x > pairs/count.py && echo answer > results.txt"
             " && for i in $(seq 50); do echo $i > f$i; done && rm f*")
# what a later run can read of the tree without changing it (ctimes aside: each reset sets
# every time in the tree, at its own time, whatever the runs did, and every ctime moves)
LOOK = (f"{sys.executable} -c \"import os\n"
        "for r, ds, fs in sorted(os.walk('.')):\n"
        "    ds[:] = sorted(d for d in ds if d != '.git')\n"
        "    for n in [r, *(os.path.join(r, f) for f in sorted(fs))]:\n"
        "        s = os.lstat(n); print(n, s.st_ino, s.st_mode, s.st_size, s.st_mtime_ns)\"")


def host_state(tree: Path) -> dict[str, tuple]:
    out = {}
    for root, dirs, files in fs_walk.walk(tree):
        dirs[:] = [d for d in dirs if d != ".git"]
        for p in [root, *(os.path.join(root, f) for f in files)]:
            s = os.lstat(p)
            out[fs_walk.relative(p, tree)] = (s.st_ino, s.st_mode, s.st_size, s.st_mtime_ns, s.st_ctime_ns)
    return out


@pytest.fixture
def runs(tmp_path):
    if not overlay_works():
        pytest.skip(f"this host's jail gives no overlay: {REFUSED.get('overlay')}")
    repo = python_repo(tmp_path / "user", n=10)
    ws = Workspace(repo, head_commit(repo), tmp_path / "ws")
    r = FreshRuns(ws, ws.tree_for(""), [])
    yield r
    r.close()


def test_a_run_changes_nothing_of_its_tree_and_says_what_it_wrote(runs):
    assert runs.throwaway
    runs.ready()  # the tree reset, its worker up
    before = host_state(runs.tree)
    r = runs.run(MESSY_RUN, 60)
    assert r.ok, r.output
    assert host_state(runs.tree) == before
    # the write check still sees every change, from the upper folder
    assert {"bench.py", "results.txt", "pairs/count.py", "tests/test_count.py", "tests/moved.py"} <= runs.written
    assert not any(p.startswith("f") for p in runs.written)  # made and deleted in the run: nothing left


def test_no_run_leaves_anything_a_later_run_can_read(runs):
    first = runs.run(LOOK, 60)
    assert first.ok and "pairs/count.py" in first.output, first.output
    assert runs.run(MESSY_RUN, 60).ok
    again = runs.run(LOOK, 60)
    assert again.ok
    # folders too: a folder made again on the host got a new inode number, which the resets
    # could not put back (left open by red team 17). Not compared: the tree's root, which is
    # each run's own upper folder (made by kopt), and the `.git` file kopt's reset rewrites
    assert below_root(again.output) == below_root(first.output)


def below_root(look: str) -> list[str]:
    return [line for line in look.splitlines() if line.split()[0] not in (".", "./.git")]


def test_build_outputs_are_kept_from_the_upper_folder(runs):
    """A file a run wrote is kept (copied out of its upper folder) and put back for the next run."""
    assert runs.run("mkdir -p build && echo binary > build/tool", 60).ok
    assert runs.written == {"build/tool"}
    runs.keep({"build/tool"})
    r = runs.run("cat build/tool", 60)
    assert r.ok and r.output.strip() == "binary", r.output
    assert runs.written == set()
    upper = runs.upper
    runs.close()
    assert upper is not None and not upper.exists()


def test_a_tree_overlayfs_cannot_name_is_run_in_place_and_reset(tmp_path):
    """A ':' in the tree's path cannot go into overlayfs' options: runs then write the tree
    itself, the write check reads it there, and the reset before the next run puts it back."""
    repo = python_repo(tmp_path / "user", n=10)
    ws = Workspace(repo, head_commit(repo), tmp_path / "work:space")
    runs = FreshRuns(ws, ws.tree_for(""), [])
    try:
        assert not runs.throwaway
        r = runs.run("echo answer > results.txt && rm bench.py", 60)
        assert r.ok, r.output
        assert runs.written == {"results.txt", "bench.py"} and not (runs.tree / "bench.py").exists()
        r = runs.run("cat bench.py && test ! -e results.txt", 60)
        assert r.ok, r.output
    finally:
        runs.close()
