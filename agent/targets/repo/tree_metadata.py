"""What a repository run keeps in its tree outside file contents, set back after each reset.

`git reset --hard` and `git clean` bring back what files hold. A run can also keep a value in
an extended attribute, a mode, a time (a symlink's atime included) or a folder's size (ext4
folders never shrink): each carried a bench's answer from its untimed warm-up into every timed
run, each "from a clean copy of the tree" (faster 5.6-9.3x, red team 15). `settle` removes
xattrs, sets modes to 0644/0755 (the exec bit is git's), every time to FIXED_NS (older than any
build output a run keeps, so those stay up to date) and makes anew every folder larger than it
was as committed. Making the whole tree anew instead cost 15 s a reset for 21,000 files here.

No run can set a change time (ctime), so it is the one thing a run cannot put back: a file
rewritten in place with its size and mtime kept survived `git reset --hard` (git trusts its
stat data), and which files a run chmodded or read carried 64 bits in their ctimes (faster
6.9-9.8x, red team 16). So `settle` sets every entry's times (every ctime moves with them)
and records each file's (inode, ctime); before the next reset, `unsettled` gives every file
whose pair moved a new mtime, so git reads its content again and rewrites it if it changed.
A file git brings back has a new inode number; `renumbered` then writes every file anew in a
random order (red team 17).
"""
from __future__ import annotations

import os
import secrets
import shutil
import stat
from pathlib import Path

from kopt.sandboxes import fs_walk

FIXED_NS = 1_600_000_000 * 10**9  # 2020-09-13
Stamps = dict[str, tuple[int, int]]  # path in the tree -> (inode, ctime) as the last settle left it


def folder_sizes(tree: Path) -> dict[str, int]:
    """Each folder's size (relative path -> bytes), the tree's own as "."."""
    out = {}
    for root, _, _ in fs_walk.walk(tree):
        try:
            out[fs_walk.relative(root, tree)] = os.lstat(root).st_size
        except OSError:
            continue
    return out


def settle(tree: Path, sizes: dict[str, int], touched: bool = True) -> tuple[bool, Stamps]:
    """Set TREE's metadata back (SIZES: its folders' sizes as committed; TOUCHED: a file
    changed since the last settle): whether a file's mtime moved (git's index, which records
    them, then needs a refresh), and the stamps of its files for `unsettled`. Once any file
    changed, every file's times are set again, so which ones changed shows in no ctime."""
    moved, changed, files = False, touched, {}
    for root, _, names in fs_walk.walk(tree):
        try:
            if os.lstat(root).st_size > sizes.get(fs_walk.relative(root, tree), 1 << 62):
                _remake(root)
        except OSError:
            pass
        _settle_one(root, is_dir=True, always=True)  # folders: few, and every run's files move their ctimes
        for name in names:
            path = os.path.join(root, name)
            was_moved, was_set, files[path] = _settle_one(path, is_dir=False, always=False)
            moved, changed = moved or was_moved, changed or was_set
    stamps = {}
    for path, st in files.items():
        try:
            if changed:
                os.utime(path, ns=(FIXED_NS, FIXED_NS), follow_symlinks=False)
                st = os.lstat(path)
        except OSError:
            continue
        if st is not None:
            stamps[fs_walk.relative(path, tree)] = (st.st_ino, st.st_ctime_ns)
    return moved, stamps


def unsettled(tree: Path, stamps: Stamps | None, folders: dict[str, int] | None = None) -> int:
    """Give every file of TREE that changed in any way since `settle` made STAMPS (None: no
    stamps yet, every file) an mtime git's index does not hold, so the next `git reset
    --hard` compares its content and writes it anew where it differs; how many there were.
    A folder that is not one of FOLDERS (the committed ones) goes now, with `rm -rf`, as
    `git clean` would take it: git took 20 s a reset for 1,500 nested folders."""
    marked = 0
    for root, dirs, files in fs_walk.walk(tree):
        if root == str(tree):
            dirs[:] = [d for d in dirs if d != ".git"]
        if folders is not None:
            extra = [d for d in dirs if fs_walk.relative(os.path.join(root, d), tree) not in folders]
            for d in extra:
                fs_walk.remove_tree(os.path.join(root, d))
            dirs[:] = [d for d in dirs if d not in extra]
        for name in files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
                if stamps is None or stamps.get(fs_walk.relative(path, tree)) != (st.st_ino, st.st_ctime_ns):
                    os.utime(path, ns=(FIXED_NS + 10**9,) * 2, follow_symlinks=False)  # git reads whole seconds
                    marked += 1
            except OSError:
                continue
    return marked


def renumbered(tree: Path, before: Stamps | None, after: Stamps) -> bool:
    """If a file of BEFORE (the last reset's stamps) came back under another inode number (a
    run deleted or replaced it), write every file of AFTER anew, in a random order, so which
    ones came back new shows in no number: which files a run deleted carried a 64-bit answer
    into the timed runs (faster 8.41x, red team 17). Whether it did (git's index then needs a
    refresh)."""
    if before is None or all(before.get(rel, st)[0] == st[0] for rel, st in after.items()):
        return False
    paths = list(after)
    secrets.SystemRandom().shuffle(paths)
    for rel in paths:
        path = os.path.join(tree, rel)
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            fresh = os.path.join(os.path.dirname(path), f".kopt-renumber-{secrets.token_hex(4)}")
            with open(path, "rb") as src, open(fresh, "xb") as dst:
                shutil.copyfileobj(src, dst)
            os.chmod(fresh, stat.S_IMODE(st.st_mode))
            os.utime(fresh, ns=(FIXED_NS, FIXED_NS))
            os.rename(fresh, path)
        except OSError:
            continue
    return True


def _settle_one(path: str, is_dir: bool, always: bool) -> tuple[bool, bool, os.stat_result | None]:
    """One entry set back (its times even where they look right, if ALWAYS): whether its
    mtime moved, whether anything of it was set, and its stat from before."""
    try:
        st = os.lstat(path)
        was_set = always
        if not stat.S_ISLNK(st.st_mode):
            for attr in os.listxattr(path, follow_symlinks=False):
                os.removexattr(path, attr, follow_symlinks=False)
                was_set = True
            mode = 0o755 if is_dir or st.st_mode & 0o100 else 0o644
            if stat.S_IMODE(st.st_mode) != mode:
                os.chmod(path, mode)
                was_set = True
        if always or st.st_atime_ns != FIXED_NS or st.st_mtime_ns != FIXED_NS:
            os.utime(path, ns=(FIXED_NS, FIXED_NS), follow_symlinks=False)
            was_set = True
        return st.st_mtime_ns != FIXED_NS and not is_dir, was_set, st
    except OSError:
        return False, False, None


def _remake(folder: str) -> None:
    """FOLDER made anew with the same entries (renamed across, nothing copied): a new folder
    is as small as its entries allow."""
    fresh = os.path.join(os.path.dirname(folder), f".kopt-remake-{secrets.token_hex(4)}")
    os.mkdir(fresh)
    for name in os.listdir(folder):
        os.rename(os.path.join(folder, name), os.path.join(fresh, name))
    os.rmdir(folder)
    os.rename(fresh, folder)
