"""What a jailed worker sees: the namespaces `unshare` gives here and jail.sh's options.

Every folder but the system's is blanked (homes, /tmp, /work, ...), and only what a worker
must read is bound back read-only: the python install, kopt's own code, the task file and its
build cache. When kopt runs as root each worker gets a uid of its own. Which of these a host
actually gives is probed once by jail_probe.py.
"""
from __future__ import annotations

import functools
import glob
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


@functools.lru_cache(maxsize=1)
def namespace_prefix() -> tuple[str, ...]:
    """The `unshare` prefix that works here (net + pid (+ ipc) namespaces), or () with none."""
    exe = shutil.which("unshare")
    if not exe:
        return ()
    plain = [(exe, "--net", "--pid", "--ipc", "--fork", "--kill-child"),
             (exe, "--net", "--pid", "--fork", "--kill-child")]
    user = [(exe, "--user", "--map-root-user", *p[1:]) for p in plain]
    candidates = [*plain, *user] if os.geteuid() == 0 else [*user, *plain]
    for prefix in candidates:
        try:
            r = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return prefix
    return ()


JAIL = Path(__file__).with_name("jail.sh")


def jail_command(prefix: list[str], jail_args: list[str], argv: list[str]) -> list[str]:
    """ARGV run inside jail.sh (given JAIL_ARGS: its options, tmpfs size, work dir, cache dir,
    hidden paths) in the namespaces PREFIX opens, a mount namespace among them: the one way
    workers and the jail's probes are started."""
    return [*prefix, "--mount", "/bin/sh", str(JAIL), *jail_args, "--", *argv]
# When kopt runs as root, each worker gets a uid (and the same gid) of its own from this
# range, owned by nobody on the host: workers sharing one uid would share its process count
# (RLIMIT_NPROC: a fork bomb would starve the next evaluation's threads) and keyring.
WORKER_UIDS = range(2_000_000_000, 2_000_000_000 + (1 << 24))
MINIMAL_DEV = ("null", "zero", "full", "random", "urandom", "fd", "stdin", "stdout", "stderr", "shm")
# What a worker gets, by the names `kopt doctor` and `checks.sandbox` show.
PROTECTIONS = ("ipc namespace", "unprivileged uid", "home allow-list", "minimal /dev",
               "unix/vsock/netlink block", "keyring blocked", "fresh /proc")
# Secrets a worker must never read; hidden one by one only where the homes cannot be
# emptied (the allow-list of jail.sh -b/-a does not depend on knowing their names).
SENSITIVE_HOME = (".ssh", ".aws", ".azure", ".gnupg", ".netrc", ".docker", ".kube", ".config", ".git-credentials",
                  ".pypirc", ".bash_history", ".python_history", ".cache/huggingface", ".local/share/keyrings")


def default_hidden() -> list[str]:
    home = Path.home()
    return [str(home / name) for name in SENSITIVE_HOME]


def home_roots() -> list[str]:
    """The folders whose contents a worker never sees but for what it needs: /root, /home
    and kopt's own $HOME (wherever it is)."""
    roots = {"/root", "/home", os.path.realpath(Path.home())}
    return sorted(r for r in roots if r != "/" and os.path.isdir(r))


def work_parent() -> str:
    """Where work dirs go: the temp folder, unless it lies in a home folder (a home that
    holds the work dir could not be emptied), then /tmp."""
    base = os.path.realpath(tempfile.gettempdir())
    inside = any((base + "/").startswith(h.rstrip("/") + "/") for h in home_roots())
    return "/tmp" if inside and os.path.isdir("/tmp") else base


# Top-level folders a worker sees whole (read-only): the system, python and compilers need
# them. Every other one (/tmp, /var, /work, /srv, /mnt, /opt, /run, ...) is blanked like a home.
SYSTEM_DIRS = ("usr", "lib", "lib32", "lib64", "libx32", "bin", "sbin", "etc", "proc", "dev", "sys", "nix")


def outside_system() -> tuple[list[str], list[str]]:
    """(the top-level folders to blank, the top-level files to hide): all but SYSTEM_DIRS."""
    dirs, files = [], []
    for entry in sorted(os.listdir("/")):
        path = "/" + entry
        if entry in SYSTEM_DIRS or os.path.islink(path) or "\n" in entry:
            continue
        if os.path.isdir(path):
            dirs.append(path)
        elif os.path.isfile(path):
            files.append(path)
    return dirs, files


def _kopt_sources() -> list[str]:
    """kopt's own code: its package folders and top-level modules, not the whole checkout it
    may live in (run dirs, .git, task files beside it)."""
    root = Path(__file__).resolve().parents[1]
    return [str(p) for p in sorted(root.iterdir())
            if (p.is_dir() and (p / "__init__.py").exists()) or (p.is_file() and p.suffix == ".py")]


def runtime_paths() -> list[str]:
    """What every worker reads: the python install, the venv, every import path, kopt
    itself and the CUDA toolkit. An import path that holds kopt's checkout (pytest puts it
    first) stands for kopt's own code only. The folder of the script kopt was started from,
    and the current folder, are not import paths of a worker (Python puts one of them first
    in sys.path for the main script): a script in $HOME calling `evaluate` showed the whole
    home folder to every candidate (red team 9)."""
    root = os.path.realpath(Path(__file__).parents[1])
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    started = {os.path.realpath(os.getcwd()), *([os.path.realpath(os.path.dirname(main))] if main else [])}
    started = {d for d in started if not any((d + "/").startswith(x.rstrip("/") + "/") for x in prefixes)}
    paths = [*prefixes, *(p for p in sys.path if p and os.path.realpath(p) not in started),
             *(os.environ.get(k, "") for k in ("CUDA_HOME", "CUDA_PATH"))]
    real = [os.path.realpath(p) for p in paths if p and os.path.exists(p)]
    kept = [p for p in real if not (root + "/").startswith(p.rstrip("/") + "/")]
    return [*kept, *_kopt_sources()]


def _minimal(paths: list[str]) -> list[str]:
    """The paths, deduplicated, without those inside another one (one bind covers them)."""
    out: list[str] = []
    for p in sorted(set(paths), key=len):
        if "\n" not in p and p != "/" and not any(p == q or p.startswith(q.rstrip("/") + "/") for q in out):
            out.append(p)
    return out


def _closed_ancestor(path: str, uid: int) -> str | None:
    """The highest folder above `path` that `uid` may not traverse (root-owned 0700 /tmp/pytest-of-root)."""
    parts = Path(path).parts
    for n in range(2, len(parts)):
        folder = os.path.join(*parts[:n])
        try:
            st = os.stat(folder)
        except OSError:
            return None
        if not st.st_mode & 0o001 and st.st_uid != uid:
            return folder
    return None


def jail_options(features: frozenset[str], work: str, allowed: list[str], gpu: bool,
                 extra_blanks: tuple[str, ...] = (), overlay: str | None = None) -> list[str]:
    """jail.sh's options for the protections in `features`: with "home", every folder but the
    system's is blanked, and only `allowed` (and the work dir) bound back; with `overlay` (an
    upper folder, which `allowed` and the hidden paths must name too), the cache folder is
    seen through an overlay whose changes land there."""
    opts: list[str] = ["-p", os.path.realpath(sys.executable)]
    if overlay:
        opts += ["-o", overlay]
    uid = WORKER_UIDS[secrets.randbelow(len(WORKER_UIDS))]
    if "uid" in features:
        opts += ["-u", f"{uid}:{uid}"]
    if "home" in features:
        allowed = _minimal([*allowed, os.path.realpath(work)])
        blanks = [*home_roots(), *outside_system()[0], *extra_blanks]
        if "uid" in features:
            blanks += [a for a in (_closed_ancestor(p, uid) for p in allowed) if a]
        for b in _minimal(blanks):
            opts += ["-b", b]
        for a in allowed:
            opts += ["-a", a]
    if "dev" in features:
        opts.append("-d")
        for node in sorted(glob.glob("/dev/nvidia*")) if gpu else ():
            opts += ["-g", node]
    if "seccomp" in features:
        opts.append("-s")
    return opts
