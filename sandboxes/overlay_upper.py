"""The upper layer of a throw-away tree: where one sandboxed run's changes to its tree land.

jail.sh -o UPPER shows a repository's tree to the run through an overlay whose upper layer is
UPPER/u, a host folder made here for that one run. The tree itself is the read-only lower
layer, so nothing a run does (writes, deletes, renames, chmods, new folders) moves any of its
inode numbers, times or folder sizes, which a reset could not always put back (red teams
15-17 kept a bench's answer in them). What the run changed is read from UPPER/u afterwards:
its files, and its whiteouts (a deleted path is a 0/0 character device there).
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from kopt.sandboxes import fs_walk


def make(tree: Path) -> Path:
    """A fresh, empty upper folder for one run in TREE, beside it (hidden from the run like the
    tree's other siblings). Its root becomes the merged tree's root: it gets the tree's owner
    and mode."""
    st = os.stat(tree)
    upper = Path(tree).parent / f".{Path(tree).name}.upper-{secrets.token_hex(6)}"
    upper.mkdir(mode=0o700)
    (upper / "w").mkdir(mode=0o700)
    (upper / "u").mkdir()
    os.chown(upper / "u", st.st_uid, st.st_gid)
    os.chmod(upper / "u", stat.S_IMODE(st.st_mode))
    return upper


def changes(upper: Path) -> set[str]:
    """What the run changed, relative to the tree: every entry of UPPER/u but folders (a file
    written or whose metadata changed, a symlink, a deleted path's whiteout)."""
    top = root(upper)
    out = set()
    for here, _, files in fs_walk.walk(top):
        for name in files:
            out.add(fs_walk.relative(os.path.join(here, name), top))
    return out


def root(upper: Path) -> Path:
    """The folder whose tree is the run's changes (whiteouts included)."""
    return Path(upper) / "u"


def remove(upper: Path | None) -> None:
    """Remove the folder; overlayfs leaves its work folder unreadable (mode 0), so modes first."""
    if upper is None or not os.path.lexists(upper):
        return
    for here, dirs, _ in fs_walk.walk(upper):
        for d in dirs:
            try:
                os.chmod(os.path.join(here, d), 0o700, follow_symlinks=False)
            except OSError:
                pass
    fs_walk.remove_tree(upper)
