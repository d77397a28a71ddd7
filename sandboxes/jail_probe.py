"""Which of jail.sh's protections this host gives: a jailed probe tries each one once.

A feature whose step fails (no id-mapped mounts, no seccomp, ...) is dropped and the probe
runs again without it; `REFUSED` says why, for `kopt doctor`. With none of the least a jail
must give (a hidden file unreadable, the host read-only, the work dir private, the build cache
writable), there is no jail here and workers run with namespaces and rlimits only.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kopt.sandboxes import overlay_upper
from kopt.sandboxes.jail_setup import (
    MINIMAL_DEV,
    PROTECTIONS,
    jail_command,
    jail_options,
    namespace_prefix,
    runtime_paths,
    work_parent,
)
from kopt.sandboxes.jailhelp import ARCHES

PROBE = r"""
import ctypes, json, os, socket, sys
d, add_key = sys.argv[1], int(sys.argv[2])
def can(f):
    try:
        f()
        return True
    except OSError:
        return False
def read(path):  # a hidden file may still open (as /dev/null): only its content counts
    if open(path).read() != "secret":
        raise OSError("hidden")
def sock(fam):
    socket.socket(fam, socket.SOCK_DGRAM).close()
libc = ctypes.CDLL(None, use_errno=True)
def key():  # in the process keyring (-2): it dies with this process if the call works
    if libc.syscall(add_key, b"user", b"kopt-probe", b"x", 1, -2) < 0:
        raise OSError(ctypes.get_errno(), "add_key")
uid_map = open("/proc/self/uid_map").read().split()
print("KOPT-PROBE " + json.dumps({
    "secret": can(lambda: read(d + "/secret")), "escaped": can(lambda: open(d + "/escaped", "w")),
    "wrote": can(lambda: open("ok", "w")), "cache": can(lambda: open(d + "/cache/new", "w")),
    "home_secret": can(lambda: read(d + "/home/secret")),
    "home_allowed": can(lambda: read(d + "/home/allowed/file")),
    "host_uid": int(uid_map[1]) + os.getuid() - int(uid_map[0]), "ipc": os.readlink("/proc/self/ns/ipc"),
    "dev": sorted(os.listdir("/dev")), "pids": sum(e.isdigit() for e in os.listdir("/proc")),
    "sockets": [*(can(lambda: sock(f)) for f in (socket.AF_UNIX, socket.AF_NETLINK, getattr(socket, "AF_VSOCK", 40))),
                can(lambda: [s.close() for s in socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)])],
    "keyring": can(key)}))
"""
# which jail.sh step (its `kopt-jail: STEP` line) needs which feature
STEP_FEATURE = (("home:", "home"), ("dev:", "dev"), ("idmap", "uid"), ("seccomp", "seccomp"))
# the protections each feature gives, and why the probe dropped a feature (for `kopt doctor`)
FEATURE_PROTECTIONS = {"uid": ("unprivileged uid",), "home": ("home allow-list",), "dev": ("minimal /dev",),
                       "seccomp": ("unix/vsock/netlink block", "keyring blocked")}
REFUSED: dict[str, str] = {}


def _probe_once(prefix: tuple[str, ...], features: frozenset[str], run=None) -> tuple[dict | None, str]:
    """The probe's findings, jailed with `features`: through jail.sh's exec, or through
    `run(JAIL_ARGS, PROBE_ARGS) -> (returncode, stdout, stderr)` (zygote_client's forks)."""
    add_key = ARCHES.get(os.uname().machine, (0, {"add_key": 248}))[1]["add_key"]
    with tempfile.TemporaryDirectory(dir=work_parent()) as d:
        for sub in ("work", "cache", "home/allowed"):
            os.makedirs(f"{d}/{sub}")
        for f in ("secret", "home/secret", "home/allowed/file"):
            Path(d, f).write_text("secret")
        os.chmod(d, 0o755)
        opts = jail_options(features, f"{d}/work", [*runtime_paths(), f"{d}/home/allowed", f"{d}/cache"],
                            gpu=False, extra_blanks=(f"{d}/home",))
        jail_args = [*opts, "16", f"{d}/work", f"{d}/cache", f"{d}/secret"]
        if run is None:
            cmd = jail_command(prefix, jail_args, [os.path.realpath(sys.executable), "-I", "-S", "-c", PROBE, d,
                                                   str(add_key)])
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as e:
                return None, str(e)
            rc, stdout, stderr = r.returncode, r.stdout, r.stderr
        else:
            rc, stdout, stderr = run(jail_args, [d, str(add_key)])
        line = next((x for x in stdout.splitlines() if x.startswith("KOPT-PROBE ")), None)
        if rc != 0 or line is None:
            return None, stderr or stdout
        out = json.loads(line.split(" ", 1)[1])
        out["private"] = not (Path(d) / "escaped").exists() and not (Path(d) / "work" / "ok").exists()
        out["cache_host"] = (Path(d) / "cache" / "new").exists()
        return out, ""


@functools.lru_cache(maxsize=1)
def jail_features() -> tuple[frozenset[str], dict[str, bool]] | None:
    """(the jail.sh features this host runs, which protections a worker gets with them), or
    None when no jail works here: a hidden file unreadable, the host read-only, the work
    dir private and the build cache writable are the least a jail must give."""
    prefix = namespace_prefix()
    if not prefix or not shutil.which("mount") or not shutil.which("setpriv"):
        return None
    features = {"home", "dev", "seccomp"} | ({"uid"} if os.geteuid() == 0 and "--user" not in prefix else set())
    while True:
        out, err = _probe_once(prefix, frozenset(features))
        if out is not None or not features:
            break
        culprit = next((f for step, f in STEP_FEATURE if f"kopt-jail: {step}" in err and f in features), None)
        culprit = culprit or next(f for f in ("seccomp", "uid", "dev", "home") if f in features)
        features.discard(culprit)
        lines = [x for x in err.strip().splitlines() if x.strip()]
        REFUSED[culprit] = next((x for x in lines if x.startswith("kopt-jail: ")), lines[-1] if lines else "failed")
        if "home" not in features and "uid" in features:
            features.discard("uid")  # 0700 folders above the python install need the allow-list
            REFUSED["uid"] = "needs the home allow-list"
    return _judged(out, frozenset(features))


def _judged(out: dict | None, features: frozenset[str]) -> tuple[frozenset[str], dict[str, bool]] | None:
    """(features, the protections a worker has) from the probe's findings, or None when they
    lack the least a jail must give."""
    if out is None or out["secret"] or out["escaped"] or not out["wrote"] or not out["private"] \
            or not out["cache"] or not out["cache_host"]:
        return None
    return features, {
        "ipc namespace": out["ipc"] != os.readlink("/proc/self/ns/ipc"),
        "unprivileged uid": out["host_uid"] != 0,
        "home allow-list": "home" in features and out["home_allowed"] and not out["home_secret"],
        "minimal /dev": set(out["dev"]) <= set(MINIMAL_DEV),
        "unix/vsock/netlink block": not any(out["sockets"]),
        "keyring blocked": not out["keyring"],
        "fresh /proc": out["pids"] <= 3,
    }


def probe_through(run) -> tuple[dict[str, bool] | None, str]:
    """(the protections a worker started by `run` has, with this host's jail features; or
    None and why). A way of starting workers is used only where this matches jail_features()."""
    jail = jail_features()
    if jail is None:
        return None, "no jail on this host"
    out, err = _probe_once(namespace_prefix(), jail[0], run)
    judged = _judged(out, jail[0])
    lines = [x for x in err.strip().splitlines() if x.strip()]
    return (judged[1], "") if judged else (None, lines[-1] if lines else "the probe found the jail open")


def can_jail() -> bool:
    """Whether jail.sh works here (see jail_features)."""
    return jail_features() is not None


def protections(jailed: bool, isolated: bool) -> dict[str, bool]:
    """Which of PROTECTIONS a worker started this way has."""
    if jailed:
        return dict(jail_features()[1])
    return {name: name == "ipc namespace" and isolated and "--ipc" in namespace_prefix() for name in PROTECTIONS}


OVERLAY_PROBE = r"""
import os, sys
tree = sys.argv[1]
open(os.path.join(tree, "new"), "w").write("new")
open(os.path.join(tree, "old"), "a").write("more")
os.chmod(os.path.join(tree, "old"), 0o600)
os.unlink(os.path.join(tree, "gone"))
print("KOPT-OVERLAY", open(os.path.join(tree, "old")).read(), sorted(os.listdir(tree)))
"""


@functools.lru_cache(maxsize=1)
def overlay_works() -> bool:
    """Whether jail.sh -o works here: inside, a tree seen through the overlay takes writes and
    deletions, they land in the upper folder, and the tree itself is as it was (why not, in
    REFUSED["overlay"])."""
    jail = jail_features()
    if jail is None:
        REFUSED["overlay"] = "no jail on this host"
        return False
    with tempfile.TemporaryDirectory(dir=work_parent()) as d:
        for sub in ("work", "box/tree"):
            os.makedirs(f"{d}/{sub}")
        tree = f"{d}/box/tree"
        Path(tree, "old").write_text("old")
        Path(tree, "gone").write_text("gone")
        os.chmod(d, 0o755)
        before = {n: os.stat(f"{tree}/{n}") for n in ("old", "gone", ".")}
        upper = str(overlay_upper.make(Path(tree)))
        opts = jail_options(jail[0], f"{d}/work", [*runtime_paths(), tree, upper], gpu=False, overlay=upper)
        cmd = jail_command(namespace_prefix(), [*opts, "16", f"{d}/work", tree, upper],
                           [os.path.realpath(sys.executable), "-I", "-S", "-c", OVERLAY_PROBE, tree])
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            REFUSED["overlay"] = str(e)
            return False
        finally:
            changed = overlay_upper.changes(Path(upper))
            overlay_upper.remove(Path(upper))
        kept = sorted(os.listdir(tree)) == ["gone", "old"] and Path(tree, "old").read_text() == "old" and all(
            (a.st_mode, a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) ==
            (b.st_mode, b.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns)
            for n, b in before.items() for a in [os.stat(f"{tree}/{n}")])
        if r.returncode == 0 and "KOPT-OVERLAY oldmore ['new', 'old']" in r.stdout and kept \
                and changed == {"new", "old", "gone"}:
            return True
        lines = [x for x in (r.stderr + r.stdout).strip().splitlines() if x.strip()]
        REFUSED["overlay"] = ("the tree changed on the host" if not kept else
                              f"the upper folder held {sorted(changed)}" if r.returncode == 0 else
                              lines[-1] if lines else "failed")
        return False
