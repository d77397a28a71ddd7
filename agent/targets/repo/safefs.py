"""Reading and writing a candidate's tree from kopt's own (unsandboxed) process.

A candidate's tree is written by untrusted code: any path in it may be a symlink (to a
file outside the run dir, to /proc/self/fd/0, to a FIFO) or a folder may stand where a
file was. kopt's process therefore walks every path component with `lstat`, refuses
symlinks and anything but regular files and folders, opens with O_NOFOLLOW|O_NONBLOCK
(a FIFO never blocks it) and reads at most a size cap.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

MAX_READ = 4 << 20


class UnsafePath(OSError):
    """A path in a candidate's tree that kopt will not follow (symlink, device, outside)."""


def _components(tree: Path, rel: str) -> list[Path]:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise UnsafePath(f"{rel!r} leaves the tree")
    root = Path(tree)
    return [root.joinpath(*p.parts[:i + 1]) for i in range(len(p.parts))]


def check_inside(tree: Path, rel: str) -> Path:
    """`tree/rel` with no symlink on the way; its folders must be real folders. The last
    component may be missing or a regular file; anything else is an UnsafePath."""
    parts = _components(tree, rel)
    for i, p in enumerate(parts):
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return parts[-1]
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(f"{rel} goes through a symlink ({p.relative_to(tree)})")
        last = i == len(parts) - 1
        if not last and not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(f"{p.relative_to(tree)} is not a folder")
        if last and not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"{rel} is not a regular file")
    return parts[-1]


def is_regular(tree: Path, rel: str) -> bool:
    """Whether `tree/rel` exists as a regular file reached without symlinks."""
    try:
        return check_inside(tree, rel).exists()
    except UnsafePath:
        return False


def read_bytes(tree: Path, rel: str, cap: int = MAX_READ) -> bytes:
    """The bytes of a regular file inside the tree (at most `cap`); UnsafePath otherwise."""
    path = check_inside(tree, rel)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath(f"{rel} is not a regular file")
        chunks, left = [], cap
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(tree: Path, rel: str, cap: int = MAX_READ, errors: str = "strict") -> str:
    return read_bytes(tree, rel, cap).decode(errors=errors)


def write_text(tree: Path, rel: str, text: str) -> None:
    """Create or overwrite a regular file inside the tree, making real folders on the way."""
    path = check_inside(tree, rel)
    parts = PurePosixPath(rel).parts
    for i in range(1, len(parts)):
        try:
            os.mkdir(Path(tree).joinpath(*parts[:i]))
        except FileExistsError:
            pass
    check_inside(tree, rel)  # nothing swapped in while the folders were made
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath(f"{rel} is not a regular file")
        data = memoryview(text.encode())
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
