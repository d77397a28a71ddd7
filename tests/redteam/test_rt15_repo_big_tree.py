"""rt15: an honest repository of more than 20,000 files:
kopt deletes the original's work tree (crash), then, with the fix, takes minutes.

Not an attack: a repository with 21,000 small tracked files (many real repositories have
more) and a toy bench (~0.1 s). `RepoTarget.from_options` runs the original's tests and bench
in its work tree (`check_original`, a `TreeShell`).
Before (measured, committed tree): when that shell's worker was killed, `sandboxes/local.py`
`Worker.kill` ran `cache_problem(self.cache_dir, ...)` -- the cache dir of a TreeShell is the
work tree itself -- found more than `MAX_CACHE_ENTRIES` (20,000, the KernelBench build-folder
cap) and `rm -rf`ed the tree: `from_options` raised `GitError: git worktree move ... is a
missing but already registered worktree` (find_hotspots -> Workspace.tree_for).
Then (measured with the in-progress fix: `cache_mb=None` for trees, plus
`worktree._normalise_metadata`): a verdict, but after 313 s (sys 179 s) for this toy bench.
`_normalise_metadata` sets every file's mtime to FIXED_NS after `git reset --hard` recorded
the files' stat data in the index, so at the next reset every file is stat-dirty and git
rewrites all of them: one `Workspace.reset` of this tree took 0.28 s the first time, then
5.8 s and 6.2 s (git reset alone 7.0 s; the normalise walk itself 0.2 s), and an evaluation
resets each tree before every run.
After: evaluated in seconds -- trees are never discarded by the build-folder rule (`cache_mb=None`), and
a reset sets metadata back with `tree_metadata.settle`, then refreshes git's index once.
Root cause: sandboxes/local.py `Worker.kill` (build-folder cap applied to a tree); then
agent/targets/repo/worktree.py `reset` (`_normalise_metadata` after git's index refresh).
Fix: keep trees out of `Worker.kill`'s cap (done in the fix); normalise times *before*
`git reset --hard` / refresh the index after normalising (`git update-index --refresh`),
or have git's index hold FIXED_NS (e.g. normalise, then `git update-index -q --refresh`).
The evaluation runs in a child process bounded to 80 s, so this test stays short.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.small_repo import diff_of, make_repo

LIB = "def work(n):\n    total = 0\n    for i in range(n):\n        total += (i * i) % 7\n    return total\n"
FAST = "def work(n):\n    return sum((i * i) % 7 for i in range(n))\n"
FILES = {
    "lib.py": LIB,
    "runner.py": "import lib\n\n\ndef main(n):\n    return lib.work(n)\n",
    "bench.py": "import runner\n\nprint('result:', runner.main(300_000))\n",
    "test_lib.py": "import lib\n\nassert lib.work(10) == sum((i * i) % 7 for i in range(10))\n",
    **{f"data/{d}/{f}.txt": "x\n" for d in range(21) for f in range(1000)},
}
CHILD = """
import subprocess, sys
from pathlib import Path
from kopt.agent.targets.repo.repo_target import RepoTarget
repo, patch = Path(sys.argv[1]), Path(sys.argv[2])
target = None
try:
    target = RepoTarget.from_options(repo, test='python3 -c "import test_lib"', bench="python3 bench.py",
                                     focus="lib.py:work")
    res = target.evaluate(patch, [])
    print("VERDICT", res["verdict"], res.get("correct"))
finally:
    if target is not None:
        subprocess.run(["rm", "-rf", str(target.ws.root)])
"""


def test_big_repository_evaluates(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    patch = tmp_path / "honest.patch"
    patch.write_text(diff_of(repo, {"lib.py": FAST}))
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(repo), str(patch)], cwd=root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=80)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # the child started here (its finally removes its workspace)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        out = "TIMEOUT (over 80 s)\n" + (out or "")
    finally:
        # a workspace the interrupted child left: the one whose clone borrows this test's repository
        for space in Path("/tmp").glob("kopt-repo-*"):
            try:
                borrowed = (space / "clone/.git/objects/info/alternates").read_text()
            except OSError:
                continue
            if str(tmp_path) in borrowed:
                subprocess.run(["rm", "-rf", str(space)], check=False)
        subprocess.run(["rm", "-rf", str(tmp_path / "repo")], check=False)
    verdict = [line for line in out.splitlines() if line.startswith("VERDICT")]
    assert verdict and verdict[0].split()[1] in ("faster", "same", "slower"), out[-2000:]
