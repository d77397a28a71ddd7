"""`deny_exec_under`: nothing under the folder can be executed, everything else still can
(what a repository's build pass relies on: make and the compilers run, the program they
built does not)."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from kopt.sandboxes import no_exec


def _run(cmd: list[str], tree) -> str:
    def deny():
        if not no_exec.deny_exec_under(str(tree)):
            raise OSError("no Landlock")
    try:
        return subprocess.run(cmd, preexec_fn=deny, capture_output=True, text=True, check=False).stdout.strip()
    except subprocess.SubprocessError:
        pytest.skip("this kernel has no Landlock (or a filter refuses it)")
    except PermissionError:
        return "denied"


def test_nothing_under_the_tree_runs_and_everything_else_does(tmp_path):
    tree = tmp_path / "tree"
    (tree / "build").mkdir(parents=True)
    true = shutil.which("true")
    shutil.copy(true, tree / "build" / "prog")
    assert _run([true], tree) == ""  # outside the tree: runs (and Landlock is there, or skipped)
    assert _run([str(tree / "build" / "prog")], tree) == "denied"
    out = _run(["/bin/sh", "-c", f"cd {tree} && ./build/prog; echo rc=$?; cp build/prog p2 && ./p2; echo rc=$?"], tree)
    assert out.splitlines() == ["rc=126", "rc=126"], out
    link = tmp_path / "link"
    link.symlink_to(tree)  # a way into the tree from beside it is no way around the rule
    assert _run([str(link / "build" / "prog")], tree) == "denied"
