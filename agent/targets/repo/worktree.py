"""The user's repository, read-only, and one git work tree per candidate in kopt's own space.

kopt never writes to the user's working tree or index. It clones the repository with
`git clone --shared` (objects are borrowed, nothing is copied or changed in the user's
.git) into a workspace, and checks each candidate out as `git worktree` of that clone:
HEAD plus the candidate's patch. A candidate's code *is* that patch (a binary-safe
unified diff against HEAD), so a tree can always be rebuilt from the store.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from kopt.agent.errors import EnvironmentMissing, UserInputError
from kopt.agent.targets.repo import tree_metadata
from kopt.sandboxes import fs_walk

# GIT_OPTIONAL_LOCKS=0: `git status` on the user's repository must not refresh (write) its index
# hooks of the clone never run: kopt's own git calls run no code from a tree or a config
NO_HOOKS = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "GIT_AUTHOR_NAME": "kopt",
           "GIT_AUTHOR_EMAIL": "kopt@localhost", "GIT_COMMITTER_NAME": "kopt", "GIT_COMMITTER_EMAIL": "kopt@localhost"}


class GitError(RuntimeError):
    """A git command failed; the message holds its trimmed stderr."""


def git(cwd: Path, *args: str, input: bytes | None = None, check: bool = True, env: dict | None = None) -> str:
    if not shutil.which("git"):
        raise EnvironmentMissing("git is not installed; repository targets need git on PATH")
    r = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True,
                       env={**os.environ, **GIT_ENV, **(env or {})})
    if check and r.returncode != 0:
        raise GitError(f"git {' '.join(args[:3])} failed: {r.stderr.decode(errors='replace').strip()[-1500:]}")
    return r.stdout.decode(errors="replace")


def repo_root(path: Path) -> Path:
    """The top of the git work tree at `path`, or a one-line UserInputError."""
    if not path.is_dir():
        raise UserInputError(f"{path} is not a folder; a repository target is a git work tree")
    try:
        top = git(path, "rev-parse", "--show-toplevel").strip()
    except GitError:
        raise UserInputError(f"{path} is not a git repository; run `git init && git add -A && git commit` "
                             f"there first (kopt returns a patch against HEAD)") from None
    try:
        git(path, "rev-parse", "--verify", "HEAD^{commit}")
    except GitError:
        raise UserInputError(f"{path} has no commit yet; commit your code first (kopt returns a patch "
                             f"against HEAD)") from None
    return Path(top)


def head_commit(root: Path) -> str:
    return git(root, "rev-parse", "HEAD^{commit}").strip()


def dirty_paths(root: Path) -> list[str]:
    """Changed tracked files and untracked (not ignored) files, as `git status` lists them."""
    out = git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    return [e[3:] for e in out.split("\0") if len(e) > 3 and not e.startswith("!!")]


def dirty_diff(root: Path) -> str:
    """The uncommitted changes as a patch against HEAD, untracked files included, read
    without touching the user's index (untracked files are diffed against /dev/null)."""
    parts = [git(root, "diff", "--binary", "HEAD")]
    for rel in git(root, "ls-files", "--others", "--exclude-standard", "-z").split("\0"):
        if rel:
            parts.append(git(root, "diff", "--binary", "--no-index", "--", "/dev/null", rel, check=False))
    return "".join(parts)


def patch_key(patch: str) -> str:
    return hashlib.sha256(patch.encode()).hexdigest()[:16]


class Workspace:
    """A clone of the user's repository and the candidates' work trees, in `root`."""

    def __init__(self, user_repo: Path, commit: str, root: Path):
        self.user_repo, self.commit, self.root = user_repo, commit, Path(root)
        self.clone = self.root / "clone"
        self.trees = self.root / "trees"
        if not (self.clone / ".git").exists():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix="clone-", dir=self.root))
            git(self.root, "clone", "--quiet", "--shared", "--no-checkout", str(user_repo), str(tmp))
            tmp.rename(self.clone)
        self.trees.mkdir(exist_ok=True)
        self._folder_sizes: dict[str, dict[str, int]] = {}  # tree -> its folders' sizes as committed
        self._stamps: dict[str, tree_metadata.Stamps] = {}  # tree -> its files' (inode, ctime) at its last reset

    def tree_for(self, patch: str) -> Path:
        """The work tree of HEAD + `patch`, made on first use (raises GitError if it does not apply).
        The candidate is committed there, so `reset` can bring the tree back to it after a run."""
        path = self.trees / f"c-{patch_key(patch)}"
        if os.path.lexists(path / ".git"):
            return path
        tmp = self.trees / f"tmp-{os.getpid()}-{patch_key(patch)}"
        self._add(tmp)
        try:
            if patch.strip():
                apply_patch(tmp, patch)
            self._seal(tmp)
            self._move(tmp, path)
        except Exception:
            self.remove(tmp)
            raise
        self._folder_sizes[str(path)] = tree_metadata.folder_sizes(path)  # before anything ran there
        return path

    def derive(self, parent_patch: str, write) -> str:
        """The patch of a new candidate: a scratch tree of the parent, changed by
        `write(tree)` (which may raise), diffed against HEAD. The scratch tree is kept as
        the new candidate's tree so evaluating it costs no second checkout."""
        tmp = self.trees / f"tmp-{os.getpid()}-derive"
        self.remove(tmp)
        self._add(tmp)
        try:
            if parent_patch.strip():
                apply_patch(tmp, parent_patch)
            write(tmp)
            patch = diff_against(tmp, self.commit)
            final = self.trees / f"c-{patch_key(patch)}"
            if os.path.lexists(final / ".git"):
                self.remove(tmp)
            else:
                self._seal(tmp)
                self._move(tmp, final)
        except BaseException:
            self.remove(tmp)
            raise
        return patch

    def _add(self, path: Path) -> None:
        git(self.clone, "worktree", "add", "--quiet", "--detach", str(path), self.commit)

    def _seal(self, tree: Path) -> None:
        """Commit the candidate in its tree (before anything ran there): the state `reset` restores."""
        git(tree, *NO_HOOKS, "add", "-A")
        git(tree, *NO_HOOKS, "commit", "--quiet", "--allow-empty", "--no-verify", "-m", "kopt candidate")

    def _gitdir(self, tree: Path) -> Path:
        """The tree's admin folder in the clone, found from the clone's side: the `.git` file
        in a tree that candidate code ran in is the candidate's to forge."""
        want = str(Path(tree) / ".git")
        for admin in (self.clone / ".git" / "worktrees").iterdir():
            try:
                if (admin / "gitdir").read_text().strip() == want:
                    return admin
            except OSError:
                continue
        raise GitError(f"{tree} is not a work tree of {self.clone}")

    def tree_git(self, tree: Path, *args: str) -> str:
        """git on a tree that untrusted code may have written: explicit git dir, no hooks."""
        admin = self._gitdir(tree)
        # ctime not trusted: `tree_metadata.settle` sets times back, which moves ctimes
        return git(tree, f"--git-dir={admin}", f"--work-tree={tree}", "-c", "core.trustctime=false", *NO_HOOKS,
                   *args)

    def reset(self, tree: Path) -> None:
        """Bring a tree back to its committed candidate: every change, untracked or ignored file
        and nested repository (a folder named .git included) gone, its own .git link rewritten,
        and what a run keeps outside file contents set back (`tree_metadata.settle`)."""
        admin = self._gitdir(tree)
        link = Path(tree) / ".git"
        if os.path.lexists(link) and not (link.is_file() and not link.is_symlink()):
            if link.is_dir() and not link.is_symlink():
                fs_walk.remove_tree(link)  # a run shaped it: any depth (red team 15)
            else:
                link.unlink()
        link.write_text(f"gitdir: {admin}\n")
        _remove_nested_git(Path(tree))
        # a file changed in place with its size and mtime kept is the same to git's stat check
        touched = tree_metadata.unsettled(Path(tree), self._stamps.get(str(tree)),
                                          self._folder_sizes.get(str(tree))) > 0
        self.tree_git(tree, "reset", "--quiet", "--hard")
        self.tree_git(tree, "clean", "-ffdxq")
        if str(tree) not in self._folder_sizes:  # a tree an earlier process made
            self._folder_sizes[str(tree)] = tree_metadata.folder_sizes(Path(tree))
        before = self._stamps.get(str(tree))
        moved, self._stamps[str(tree)] = tree_metadata.settle(Path(tree), self._folder_sizes[str(tree)], touched)
        if tree_metadata.renumbered(Path(tree), before, self._stamps[str(tree)]):
            moved, self._stamps[str(tree)] = tree_metadata.settle(Path(tree), self._folder_sizes[str(tree)], True)
            moved = True  # every inode changed: git's index learns the new ones
        if moved:
            # the index learns the fixed times: a file whose stat differs from the index's is
            # rewritten by the next `reset --hard` (21,000 files took 6 s a reset: red team 15)
            self.tree_git(tree, "update-index", "-q", "--refresh")

    @contextlib.contextmanager
    def locked(self, *trees: Path):
        """Hold these trees for one evaluation: runs reset a tree, so two evaluations (threads
        of --jobs, or processes) must not measure in the same tree at once (flock, sorted)."""
        files = []
        try:
            for tree in sorted({Path(t).name for t in trees}):
                f = open(self.trees / f"{tree}.lock", "a")  # noqa: SIM115 -- closed below
                files.append(f)
                fcntl.flock(f, fcntl.LOCK_EX)
            yield
        finally:
            for f in reversed(files):
                f.close()

    def changes(self, tree: Path) -> str:
        """`git diff --raw` of the tree's committed candidate against HEAD (see guard.parse_raw)."""
        return self.tree_git(tree, "diff", "--raw", "-z", "--no-renames", self.commit, "HEAD")

    def _move(self, src: Path, dst: Path) -> None:
        git(self.clone, "worktree", "move", str(src), str(dst))

    def remove(self, path: Path) -> None:
        if path.exists():
            git(self.clone, "worktree", "remove", "--force", str(path), check=False)
            fs_walk.remove_tree(path)
        git(self.clone, "worktree", "prune", check=False)


def _remove_nested_git(tree: Path) -> None:
    """Delete every entry named .git below the tree's top: git never lists them (so `git clean`
    leaves them), which made them a hiding place for state kept between runs."""
    for root, dirs, files in fs_walk.walk(tree):
        top = root == str(tree)
        for name in [d for d in dirs if d == ".git" and not top]:
            path = os.path.join(root, name)
            os.unlink(path) if os.path.islink(path) else fs_walk.remove_tree(path)
        dirs[:] = [d for d in dirs if d != ".git"]
        if ".git" in files and not top:
            os.unlink(os.path.join(root, ".git"))


def apply_patch(tree: Path, patch: str, recount: bool = False) -> None:
    """`recount` trusts the hunks' lines, not their headers' counts: models miscount them."""
    extra = ("--recount",) if recount else ()
    git(tree, "apply", "--binary", "--whitespace=nowarn", *extra, "-", input=patch.encode())


def diff_against(tree: Path, commit: str) -> str:
    """Everything in `tree` that differs from `commit` (new files included) as one patch.
    Only called on trees nothing has been built in, so build outputs never leak in."""
    git(tree, "add", "-A")
    return git(tree, "diff", "--cached", "--binary", commit)


def changed_paths(patch: str) -> list[str]:
    """Every file a patch touches, on both sides: a renamed or deleted file counts too."""
    out: list[str] = []
    for line in patch.splitlines():
        for prefix in ("--- a/", "+++ b/", "rename from ", "rename to ", "copy to "):
            if line.startswith(prefix):
                path = line[len(prefix):].rstrip("\t").strip()
                if path and path not in out:
                    out.append(path)
        if line.startswith("diff --git ") and "Binary" not in line:
            b = line.rsplit(" b/", 1)[-1]
            if b not in out:
                out.append(b)
    return out


def publish_branch(user_repo: Path, clone: Path, commit: str, patch: str, branch: str, message: str) -> str:
    """Commit `patch` on `commit` in kopt's clone and fetch it into the user's repository as
    `branch`: new objects and one ref there, the user's work tree and index untouched."""
    tmp = Path(tempfile.mkdtemp(prefix="kopt-branch-"))
    tree = tmp / "tree"
    try:
        git(clone, "worktree", "add", "--quiet", "--detach", str(tree), commit)
        if patch.strip():
            apply_patch(tree, patch)
        git(tree, "add", "-A")
        git(tree, "commit", "--quiet", "--allow-empty", "--no-verify", "-m", message)
        new = git(tree, "rev-parse", "HEAD").strip()
        if git(user_repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).strip():
            raise UserInputError(f"branch {branch} already exists in {user_repo}; delete it or use another run dir")
        git(clone, "update-ref", "refs/kopt/publish", new)
        git(user_repo, "fetch", "--quiet", "--no-tags", str(clone), f"refs/kopt/publish:refs/heads/{branch}")
        return new
    finally:
        git(clone, "worktree", "remove", "--force", str(tree), check=False)
        shutil.rmtree(tmp, ignore_errors=True)
