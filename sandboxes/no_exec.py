"""Nothing under one folder may be executed: a Landlock ruleset for the calling process.

A repository's build pass (`agent/targets/repo/fresh.py`) runs the bench command with the
candidate's tree denied `execve`: make and the compilers (outside the tree) build, the
program they built cannot start, so no candidate code can write into what the pass builds.
Landlock is an allow-list: every entry beside the path from / down to the tree is allowed to
execute, nothing under the tree is. Unprivileged (no_new_privs), inherited by children,
never lifted. Where the kernel has no Landlock (or a filter refuses it) `deny_exec_under`
says False and the caller must not trust the pass.
"""
from __future__ import annotations

import ctypes
import os

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same on x86_64 and arm64
_VERSION = 1  # landlock_create_ruleset flag: ask for the ABI version
_EXECUTE = 1  # LANDLOCK_ACCESS_FS_EXECUTE
_PATH_BENEATH = 1
_NO_NEW_PRIVS = 38


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _allowed_roots(tree: str) -> list[str]:
    """Every entry beside the way from / to `tree` (each ancestor's other children), minus any
    that leads into the tree or above it (a link to it would allow all of it)."""
    out, parts = [], tree.strip("/").split("/")
    for depth in range(len(parts)):
        parent = "/" + "/".join(parts[:depth])
        on_way = os.path.join(parent, parts[depth])
        try:
            entries = [e.path for e in os.scandir(parent)]
        except OSError:
            continue
        for path in entries:
            real = os.path.realpath(path)
            if path == on_way or real == tree or real.startswith(tree + "/") or tree.startswith(real.rstrip("/") + "/"):
                continue
            out.append(path)
    return out


def deny_exec_under(tree: str) -> bool:
    """Forbid this process and its children to execute anything under `tree`; False (nothing
    restricted) where Landlock is not available."""
    tree = os.path.realpath(tree)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    libc.syscall.restype = ctypes.c_long
    if libc.syscall(_CREATE_RULESET, None, 0, _VERSION) < 1:
        return False
    handled = ctypes.c_uint64(_EXECUTE)
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(handled), ctypes.sizeof(handled), 0)
    if ruleset < 0:
        return False
    try:
        for path in _allowed_roots(tree):
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                rule = _PathBeneath(_EXECUTE, fd)
                libc.syscall(_ADD_RULE, ruleset, _PATH_BENEATH, ctypes.byref(rule), 0)
            finally:
                os.close(fd)
        if libc.prctl(_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return False
        return libc.syscall(_RESTRICT_SELF, ruleset, 0) == 0
    finally:
        os.close(ruleset)
