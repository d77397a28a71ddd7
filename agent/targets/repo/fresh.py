"""Every test and bench run starts from a clean copy of its candidate's tree.

Before each run the tree is reset to the committed candidate (changes, untracked and
ignored files, nested `.git` folders gone) and the run gets its own sandbox worker: a
fresh private /dev/shm, work dir and HOME. A result cache therefore cannot survive from
one run to the next. Build outputs are the one exception: files that the first, untimed
bench run wrote under the same names in the candidate's tree *and* in the original's
(`build/bench`, objects) are kept, copied out of the tree once and put back after every
reset, so a native bench is not rebuilt inside its timing. The candidate's kept files come
from a build pass (`repo_bench`): the bench command once more, with nothing in the tree
allowed to execute, so its program never ran where they were made (a program that wrote
its answer into its own executable during the warm-up was `faster` 14x: red team 6). Bytecode caches and anything
under a folder named .git are never kept, nor is a file the original's bench writes again
when its own outputs are put back (`rewrites`): a real build output is then up to date, a
file rewritten on every run (`results.txt`) is a result, and kept it would be a cache
whose contents the candidate chose.
"""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from kopt.agent.targets.repo import safefs
from kopt.agent.targets.repo.shell_commands import RunResult, TreeShell, can_throw_away, changed_files, snapshot
from kopt.agent.targets.repo.worktree import GitError
from kopt.sandboxes import fs_walk, overlay_upper

NEVER_KEPT = {"__pycache__", ".git"}
KEEP_CAP = 2 << 30


class FreshRuns:
    """Runs commands in one candidate's tree, each from a clean copy of it."""

    def __init__(self, ws, tree: Path, hidden: list[str], subdir: str = ""):
        self.ws, self.tree, self.hidden, self.subdir = ws, Path(tree), hidden, subdir
        self.stash = Path(ws.root) / "stash" / self.tree.name
        fs_walk.remove_tree(self.stash)
        self.kept: list[str] = []
        self.written: set[str] = set()  # what the last run wrote or changed in the tree
        self.shell: TreeShell | None = None
        self.pinged: RunResult | None = None
        self.before: dict = {}
        self.overlay: dict[str, str] = {}  # files written over every clean copy (a bench on another input)
        # where the host can, no run writes the tree: each sees it through an overlay whose upper
        # folder takes its changes (overlay_upper), read from there and thrown away, so no run
        # moves anything of the tree (inode numbers, ctimes, folder sizes) a reset could not
        # put back (red teams 15-17); elsewhere the resets between runs do what they can
        self.throwaway = can_throw_away(self.tree)
        self.upper: Path | None = None  # the last run's, until the next run starts
        self.cpu_quota: float | None = None  # the next worker's CPU quota (`slowed`)

    def start(self) -> None:
        """Reset the tree and start the next run's worker; workers of both sides of a round
        can come up together, before either side is timed."""
        if self.shell is None:
            self.ws.reset(self.tree)
            self._restore()
            for rel, text in self.overlay.items():
                safefs.write_text(self.tree, rel, text)
            overlay_upper.remove(self.upper)
            self.upper = overlay_upper.make(self.tree) if self.throwaway else None
            self.before = {} if self.throwaway else snapshot(self.tree)
            self.shell = TreeShell(self.tree, self.hidden, [self.ws.clone], subdir=self.subdir, upper=self.upper,
                                   cpu_quota=self.cpu_quota)
            self.pinged = None

    def ready(self) -> RunResult:
        """Wait until the started worker answers: its start-up is not the command's time."""
        self.start()
        if self.pinged is None:
            self.pinged = self.shell.run("true", 120)
        return self.pinged

    def run(self, command: str, timeout: float, no_exec: bool = False) -> RunResult:
        """Run `command` from a clean copy; `no_exec`: nothing in the tree may be executed."""
        r = self.ready()
        sh, self.shell = self.shell, None
        try:
            if r.ok:
                r = sh.run(command, timeout, no_exec)
        finally:
            sh.close()
        self.written = (overlay_upper.changes(self.upper) if self.upper
                        else changed_files(self.before, snapshot(self.tree)))
        return r

    def slowed(self, command: str, timeout: float, cpu_quota: float) -> RunResult | None:
        """Run `command` from a clean copy with the whole run held to CPU_QUOTA CPUs' worth of
        time, or None where the host does not let kopt cap it. What the run wrote is not
        taken for the tree's own (`written` stays as the last plain run left it)."""
        if self.shell is not None:
            self.shell.close()
            self.shell = None
        written, self.cpu_quota = self.written, cpu_quota
        try:
            self.start()
            if not self.shell.cpu_capped:
                self.shell.close()
                self.shell = None
                return None
            return self.run(command, timeout)
        finally:
            self.cpu_quota, self.written = None, written

    def _as_left(self, rel: str) -> tuple[Path, Path]:
        """(the folder, the file) where REL is as the last run left it: its upper folder where
        the run changed it, else the tree."""
        if self.upper and os.path.lexists(overlay_upper.root(self.upper) / rel):
            return overlay_upper.root(self.upper), overlay_upper.root(self.upper) / rel
        return self.tree, self.tree / rel

    def keep(self, paths: set[str]) -> None:
        """Copy these files (just written by a run) out of the tree: build outputs to put back."""
        total = 0
        for rel in sorted(paths):
            if NEVER_KEPT & set(Path(rel).parts):
                continue
            base, src = self._as_left(rel)
            try:
                fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode) or total + st.st_size > KEEP_CAP or \
                        not _plain_path(base, rel):
                    continue
                total += st.st_size
                dst = self.stash / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                with open(dst, "wb") as out:
                    shutil.copyfileobj(f, out)
            os.chmod(dst, st.st_mode & 0o755)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            self.kept.append(rel)

    def rewrites(self, command: str, timeout: float) -> tuple[RunResult, set[str]]:
        """Run `command` again with what its last run wrote put back, and say what it wrote
        again: files rewritten on every run (results), not build outputs now up to date.
        Nothing stays kept afterwards."""
        first = self.written
        self.keep(first)
        try:
            r = self.run(command, timeout)
            return r, self.written & first
        finally:
            self.kept = []
            fs_walk.remove_tree(self.stash)
            self.written = first

    def _restore(self) -> None:
        for rel in self.kept:
            if not _plain_path(self.tree, rel):
                continue
            dst = self.tree / rel
            try:  # (a folder of the path may be a file in this candidate's tree: not put back)
                dst.parent.mkdir(parents=True, exist_ok=True)
                if not os.path.lexists(dst):
                    shutil.copy2(self.stash / rel, dst, follow_symlinks=False)
            except OSError:
                continue

    def close(self) -> None:
        """Leave the tree clean: kopt's later reads of it see the candidate, not a run's leftovers."""
        if self.shell is not None:
            self.shell.close()
            self.shell = None
        overlay_upper.remove(self.upper)
        self.upper = None
        fs_walk.remove_tree(self.stash)
        try:
            self.ws.reset(self.tree)
        except GitError:
            self.ws.remove(self.tree)  # rebuilt from its patch on next use


def _plain_path(tree: Path, rel: str) -> bool:
    """No symlink anywhere on the way from the tree to `rel` (which may not exist yet)."""
    p = Path(tree)
    for part in Path(rel).parts:
        p = p / part
        if os.path.islink(p):
            return False
    return True
