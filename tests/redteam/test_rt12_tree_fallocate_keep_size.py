"""rt12: disk blocks allocated past a file's end (fallocate --keep-size) are not counted.

Attack: a repository run does `: > blob && fallocate -n -l 1500M blob`. The file's size
stays 0, its 1500 MiB of blocks are reserved on the host's disk (`du` 1501 MB).

Measured: TreeShell.run returns rc 0 after 1.9 s (the run even sleeps 1.5 s past the
allocation, six polls); the 1024 MB tree growth cap (KOPT_TREE_GROWTH_MB) never fires, and
the blocks stay on the host's disk until the tree is next reset. The same holds for a
KernelBench build folder (`cache_problem`, capped at 512 MB), which persists between
evaluations of one source.

Root cause: sandboxes/fs_walk.py `usage` sums `st_size` (lstat), not the blocks a file holds
(`st_blocks * 512`); fallocate with FALLOC_FL_KEEP_SIZE (and directories, which are skipped:
each costs >= 4 KiB) takes disk the walk never sees.
Fix idea: count max(st_size, st_blocks * 512) for regular files and st_blocks * 512 for
folders in fs_walk.usage (as `_unlinked_files` already does with st_blocks).
"""
from __future__ import annotations

import shutil

import pytest

from kopt.agent.targets.repo.shell_commands import TreeShell


@pytest.mark.skipif(shutil.which("fallocate") is None, reason="needs util-linux fallocate")
def test_fallocate_keep_size_counts_against_tree_cap(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    sh = TreeShell(tree, [])
    try:
        r = sh.run(": > blob && fallocate -n -l 1500M blob && sleep 1.5 && echo done", 60)
    finally:
        sh.close()
        (tree / "blob").unlink(missing_ok=True)
    assert not r.ok, (r.rc, r.output[-300:])


@pytest.mark.skipif(shutil.which("fallocate") is None, reason="needs util-linux fallocate")
def test_fallocate_keep_size_counts_against_build_folder_cap(tmp_path):
    import subprocess

    from kopt.sandboxes.local import cache_problem

    blob = tmp_path / "blob.o"
    blob.touch()
    subprocess.run(["fallocate", "-n", "-l", "600M", str(blob)], check=True)
    try:
        problem = cache_problem(str(tmp_path), 512)
    finally:
        blob.unlink()
    assert problem is not None
