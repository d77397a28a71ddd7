"""How many pages of a folder's files are in the host's page cache (mincore, from kopt's side).

A repository run's disk reads are counted from the page cache its memory cgroup filled, less
what the run itself wrote there (`TreeShell._disk_reads`). What it wrote is measured here, as
pages resident now, not as file sizes: a sparse or fallocated file has a size but no pages, and
subtracting its size hid reads (red team 22). Runs cannot ask this themselves (the jail refuses
mincore); kopt asks it of the run's upper folder after the run.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import stat

from kopt.sandboxes import fs_walk

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_FAILED = ctypes.c_void_p(-1).value


def residency(path: str) -> list[bool]:
    """For each page of the regular file PATH, whether it is in the page cache ([] for what
    cannot be opened or mapped, or an empty file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return []
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return []
        addr = _libc.mmap(None, st.st_size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, _FAILED):
            return []
        try:
            n = (st.st_size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
            vec = (ctypes.c_ubyte * n)()
            if _libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(st.st_size), vec) != 0:
                return []
            return [bool(v & 1) for v in vec]
        finally:
            _libc.munmap(addr, st.st_size)
    finally:
        os.close(fd)


def file_pages(path: str) -> int:
    """Pages of PATH in the page cache (0 for what cannot be opened or mapped)."""
    return sum(residency(path))


def resident_pages(top: str) -> int:
    """Pages of TOP's files in the page cache, each file (inode) once, plus its folders' blocks."""
    seen: set[tuple[int, int]] = set()
    pages = 0
    for folder, dirs, files in fs_walk.walk(top):
        for name in dirs:
            try:
                pages += -(-os.lstat(os.path.join(folder, name)).st_blocks * 512 // mmap.PAGESIZE)
            except OSError:
                pass
        for name in files:
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                pages += file_pages(path)
    return pages
