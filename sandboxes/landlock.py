"""Landlock, the kernel's unprivileged allow-list of paths: the three calls, and the paths to
allow so that everything but a few folders stays allowed.

Two users: `no_exec.py` (nothing under a repository's tree may execute during its build pass)
and `run_confinement.py` (a program run reads nothing under /proc). A ruleset judges only
the access rights it handles; a restriction is inherited by children and never lifted.
"""
from __future__ import annotations

import ctypes
import os

CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446  # the same on x86_64 and arm64
VERSION = 1  # landlock_create_ruleset flag: ask for the ABI version
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1, 2, 4, 8
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE  # the rights a rule on a file (not a folder) may name
PATH_BENEATH = 1
NO_NEW_PRIVS = 38

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def allowed_beside(hidden: list[str], root: str = "/") -> list[str]:
    """The paths to allow so that everything under ROOT is, but HIDDEN (real paths): every
    entry that neither holds a hidden path nor leads into one (a link to one would allow all of
    it), and, inside the ones that hold one, the same again."""
    out = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        path, real = entry.path, os.path.realpath(entry.path)
        if any(real == h or real.startswith(h + "/") for h in hidden):
            continue
        holds = [h for h in hidden if h.startswith(real.rstrip("/") + "/")]
        if holds and path == real:
            out += allowed_beside(holds, path)
        elif not holds:
            out.append(path)
    return out


def available() -> bool:
    """Whether this kernel has Landlock (any ABI)."""
    return LIBC.syscall(CREATE_RULESET, None, 0, VERSION) >= 1


def ruleset(handled: int, allowed: list[str]) -> int:
    """A ruleset fd judging the HANDLED rights, with them all allowed beneath each of ALLOWED
    (only the file rights on a file); -1 where the kernel has no Landlock."""
    if not available():
        return -1
    attr = ctypes.c_uint64(handled)
    fd = LIBC.syscall(CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    if fd < 0:
        return -1
    for path in allowed:
        try:
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            access = handled if os.path.isdir(path) else handled & FILE_RIGHTS
            if access:
                rule = _PathBeneath(access, pfd)
                LIBC.syscall(ADD_RULE, fd, PATH_BENEATH, ctypes.byref(rule), 0)
        finally:
            os.close(pfd)
    return fd


def restrict_self(fd: int) -> None:
    """No new privileges, then the ruleset FD on this process and its future children (OSError
    when either fails)."""
    if LIBC.prctl(NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if LIBC.syscall(RESTRICT_SELF, fd, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
