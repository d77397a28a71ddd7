"""rt17: a run hides what it writes in its tree past PATH_MAX: the growth caps never see it.

Attack: kopt's own walks of a tree (`fs_walk.walk`, under `fs_walk.usage` for the growth caps
polled every 0.25 s during a run and once after it; also `shell_commands.snapshot`, the timed
runs' write check, and `tree_metadata.settle`/`unsettled`) call `os.scandir` on *absolute*
paths and skip a folder they cannot open (`except OSError: continue`). A run makes a chain of
folders (names of 250 characters, each made with `dir_fd`, so no call of the run passes a long
path) whose absolute path is just over PATH_MAX (4096), and there `posix_fallocate`s 256 MB:
every scandir of kopt gets ENAMETOOLONG and counts nothing, so the run is never stopped and
ends normally. Here the cap is lowered to 64 MB (KOPT_TREE_GROWTH_MB's variable) so the test
writes little; the same run can allocate the whole host disk (kopt's run dir and /tmp share
it) or make millions of empty files (the entry cap is blind too) and hold them for the bench's
whole timeout. What is left afterwards: the next reset's git (which also works in absolute
paths: it fails from the same depth) exits 1, so the verdict is `runtime_error` "a tree could
not be brought back ..." and `close` deletes the tree -- no speed faked (a file git cannot
remove makes every later reset fail, so nothing stored there reaches a timed run; a depth
where kopt is blind and git is not does not exist here: both fail at 4096 absolute).
Measured: the warm-up allocated 256 MB past the 64 MB cap unseen; verdict `runtime_error`
(git clean's long-path error), never "grew its tree".
Root cause: kopt/sandboxes/fs_walk.py `walk` (scandir of absolute paths, errors skipped) under
fs_walk.usage / shell_commands.TreeShell._grown.
Fix: walk with directory file descriptors (`os.fwalk`, or `os.scandir(fd)` with each entry
opened relative to its parent, O_NOFOLLOW), so depth never hides a folder; and count a folder
that cannot be opened as a failure of the run ("the run made a folder kopt cannot read"), not
as empty. (A filesystem quota on the tree -- a loop-mounted or project-quota'd folder -- would
cap it whatever the walk sees.)
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from kopt.agent.targets.repo import shell_commands
from kopt.agent.targets.repo.repo_target import RepoTarget
from tests.support.small_repo import diff_of, make_repo

LIB = "def work(n):\n    total = 0\n    for i in range(n):\n        total += (i * i) % 7\n    return total\n"
FILES = {
    "lib.py": LIB,
    "runner.py": "import lib\n\n\ndef main(n):\n    return lib.work(n)\n",
    "bench.py": "import runner\n\nprint('result:', runner.main(200_000))\n",
    "test_lib.py": "import lib\n\nassert lib.work(10) == sum((i * i) % 7 for i in range(10))\n",
}
DEEP = (
    "import os\n"
    "\n"
    "\n"
    "def _hide(mb):\n"
    "    top = os.path.dirname(os.path.abspath(__file__))\n"
    "    want = 4096 - len(top) + 8  # relative length: absolute just past PATH_MAX, relative under it\n"
    "    cur = os.open(top, os.O_RDONLY)\n"
    "    rel = 0\n"
    "    first = True\n"
    "    while rel < want:\n"
    "        name = ('h' if first else 'd') * min(250, want - rel)\n"
    "        first = False\n"
    "        os.mkdir(name, dir_fd=cur)\n"
    "        nxt = os.open(name, os.O_RDONLY, dir_fd=cur)\n"
    "        os.close(cur)\n"
    "        cur = nxt\n"
    "        rel += len(name) + 1\n"
    "    fd = os.open('x', os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=cur)\n"
    "    os.posix_fallocate(fd, 0, mb << 20)\n"
    "    os.close(fd)\n"
    "    os.close(cur)\n"
    "\n"
    "\n"
    "def work(n):\n"
    "    if n > 1000:\n"
    "        _hide(256)\n"
    "    total = 0\n"
    "    for i in range(n):\n"
    "        total += (i * i) % 7\n"
    "    return total\n"
)


def test_deep_growth_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(shell_commands, "TREE_GROWTH_MB", 64)
    repo = make_repo(tmp_path / "repo", FILES)
    target = RepoTarget.from_options(repo, test='python3 -c "import test_lib"', bench="python3 bench.py")
    patch = tmp_path / "deep.patch"
    patch.write_text(diff_of(repo, {"lib.py": DEEP}))
    try:
        res = target.evaluate(patch, [])
    finally:
        subprocess.run(["rm", "-rf", str(target.ws.root)], check=False)
    print(res["verdict"], res.get("speedup"), res.get("reason"), res.get("checks"))
    assert "grew its tree" in (res.get("reason") or ""), res
