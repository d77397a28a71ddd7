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

import os

from kopt.sandboxes import landlock


def deny_exec_under(tree: str) -> bool:
    """Forbid this process and its children to execute anything under `tree`; False (nothing
    restricted) where Landlock is not available."""
    fd = landlock.ruleset(landlock.EXECUTE, landlock.allowed_beside([os.path.realpath(tree)]))
    if fd < 0:
        return False
    try:
        landlock.restrict_self(fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
