"""Build caches of sandboxed workers: a fresh writable one per evaluation, seeded from a
shared cache that holds build outputs only.

Why: a worker's build cache used to be one writable folder per source, kept between
evaluations, so a file the candidate wrote there (a counter) was seen by the next
evaluation of the same source (red team 5). Now each worker writes only its own fresh
folder; when the evaluation ends, files of the kinds a build makes (shared libraries,
objects, the sources and ninja files a torch extension build leaves) are copied into the
shared cache keyed by the source and toolchain, never over a file already there, and the
fresh folder goes. The shared folder is never mounted in a worker. What is left: a file
named like a build output is kept once, as the first evaluation wrote it, and then never
changes: it can say "not the first evaluation", never count them or carry later state. Only
the first evaluation that leaves build outputs promotes any (red team 7: a file of a new
name each time, `count_<n>.so`, was promoted by every evaluation and counted them).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

from kopt.sandboxes import fs_walk
from kopt.sandboxes.native import cache_root

BUILD_SUFFIXES = {".so", ".o", ".cpp", ".cc", ".c", ".cu", ".cuh", ".h", ".hpp", ".ninja", ".ptx", ".cubin",
                  ".fatbin"}
BUILD_NAMES = {".ninja_log", ".ninja_deps"}
MAX_FILE_BYTES = 512 << 20


def build_cache_dir(source: str, toolchain: str = "") -> Path:
    """The shared cache of one source's build outputs (kopt writes it, no worker sees it)."""
    key = hashlib.sha256((source + "\0" + toolchain).encode()).hexdigest()[:24]
    path = cache_root() / "sbx" / key
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_build_output(name: str) -> bool:
    return name in BUILD_NAMES or Path(name).suffix in BUILD_SUFFIXES


def fresh_cache_dir(shared: Path) -> Path:
    """A new writable folder for one worker, holding a copy of the shared build outputs (times
    kept). Its path is the same for every evaluation of one source (a torch extension's
    build.ninja names its sources by absolute path: in a folder of another name ninja rebuilt
    everything); one already in use by an evaluation running now gets a folder of its own."""
    parent = cache_root() / "sbx-run"
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(parent)
    try:
        run = parent / f"run-{shared.name}"
        run.mkdir()
    except FileExistsError:
        run = Path(tempfile.mkdtemp(prefix="run-", dir=parent))
    run.chmod(0o755)
    for path, rel in _regular_files(shared):
        dest = run / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    return run


MAX_PROMOTED_FILES = 5_000  # entries, beside the byte budget: 50,000 empty .o files passed every byte cap


def promote(run: Path, shared: Path, budget_mb: int = 1024) -> None:
    """Copy the build outputs a worker left in `run` into `shared` (regular files of a build
    output's kind, never over one there, within a byte budget), then remove `run`; only the
    first evaluation that leaves any does. Called once the worker is dead: nothing changes
    under it while this reads."""
    budget = budget_mb << 20
    marker = promoted_marker(shared)
    try:
        if _exists(marker):
            return  # promoted once already: later evaluations leave nothing behind
        kept, files = False, MAX_PROMOTED_FILES
        for path, rel in _regular_files(run):
            size = path.lstat().st_size
            dest = shared / rel
            if not is_build_output(path.name) or size > MAX_FILE_BYTES or size > budget or _exists(dest):
                continue
            budget, files = budget - size, files - 1
            if files < 0:
                break
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.kopt-tmp")
            shutil.copyfile(path, tmp, follow_symlinks=False)
            shutil.copystat(path, tmp, follow_symlinks=False)
            # never a setuid, setgid or sticky bit: a worker's setuid copy of /bin/sh landed in the
            # shared cache setuid (owned by kopt's user, root here: red team 10)
            os.chmod(tmp, path.lstat().st_mode & 0o755)
            os.replace(tmp, dest)
            kept = True
        if kept:
            marker.touch()
    except OSError:
        pass  # a cache that could not be filled only costs a rebuild
    finally:
        fs_walk.remove_tree(run)


def promoted_marker(shared: Path) -> Path:
    """Beside the shared cache (never copied into a worker's folder): its outputs were promoted."""
    return shared.with_name(shared.name + ".promoted")


STALE_S = 6 * 3600  # far past any evaluation's wall limit


def _remove_stale(parent: Path) -> None:
    """Run folders of evaluations whose kopt died before promoting them."""
    now = time.time()
    for old in parent.glob("run-*"):
        try:
            if now - old.lstat().st_mtime > STALE_S:
                fs_walk.remove_tree(old)
        except OSError:
            pass


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _regular_files(root: Path):
    """(path, path relative to root) of every plain file under root with one link: no
    symlink (a link to a host file would be copied as root) and no directory link is followed."""
    for dirpath, dirnames, filenames in fs_walk.walk(root):
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in filenames:
            path = Path(dirpath) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and not name.endswith(".kopt-tmp"):
                yield path, path.relative_to(root)
