"""kopt's zygote: a python that imported torch and the harness once and hands out fresh forks
of itself as KernelBench workers, each jailed as an exec'd worker is (issue 16 item 7: two
`import torch` per evaluation were most of its CPU).

Run as `python -m kopt.sandboxes.zygote FD` with the workers' environment (FD: its end of a
SOCK_SEQPACKET pair with kopt; zygote_client.py starts it). It never reads a request itself:
it forks a blank child, which takes exactly one request, answers with its pid and becomes that
worker; then the zygote forks the next blank one. So no code but torch's, the harness's and
this file's ever runs in the zygote, and a worker's memory holds the imports and its own
request, nothing of another worker's. A worker, step by step (what `unshare --fork
--kill-child --mount ...` and jail.sh do for an exec'd one):

- the blank child: its own session, SIGKILL when the zygote dies, the worker's cgroups,
  rlimits and cores; it answers kopt; then, as `unshare`: new mount, net, pid and ipc (where
  the host has them) and user (for an unprivileged kopt, mapping root to kopt's ids)
  namespaces, every mount made private, and it forks PID 1 of the new namespace, waits for it
  and writes its wait status to kopt's status pipe;
- PID 1 (SIGKILL when its parent dies): `jail.sh -m` with the same options does every mount
  step; then the work dir as cwd, the environment, `jailhelp.drop_privileges` (read back from
  /proc/self/status), the seccomp filter with -s, every fd but stdio and the channel closed,
  numpy's global RNG reseeded (python's `random` reseeds itself in a fork), and the harness.

What a fork shares with its zygote and with the other forks: the address-space layout and
the str-hash seed (they are not secrets the harness relies on; each worker's inputs come from
seeds kopt sends).
"""
from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import traceback
import warnings

from kopt.sandboxes import harness, jailhelp
from kopt.sandboxes.jail_probe import PROBE
from kopt.sandboxes.jail_setup import JAIL
from kopt.sandboxes.worker_limits import Limits, _limit_self

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
PR_SET_PDEATHSIG = 1
# where a worker finds its channel (harness --fd-*): the same numbers in every fork
CHANNEL_FDS = {"in": 3, "out": 4, "alarm": 5, "shm": 6, "pass": 7}
MAX_FDS = 8


def _fail(step: str, e: BaseException) -> None:
    """As jail.sh: a `kopt-jail: STEP` line and exit 97, so kopt learns which step failed."""
    print(f"kopt-jail: zygote {step}: {e}", file=sys.stderr, flush=True)
    os._exit(97)


def _die_with_parent() -> None:
    parent = os.getppid()
    jailhelp._prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def _enter(req: dict) -> None:
    """The worker's session, cgroups, rlimits and cores (Popen's preexec for an exec'd one)."""
    os.setsid()
    _die_with_parent()
    for path in req["cgroups"]:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    if req.get("limits"):
        _limit_self(Limits(**req["limits"]))
    os.sched_setaffinity(0, req["cpus"])


def _nothing_shared() -> None:
    """No writable shared mapping came with the fork: one would be memory every fork shares."""
    for line in open("/proc/self/maps"):
        perms = line.split()[1]
        if perms[1] == "w" and perms[3] == "s":
            raise OSError(f"a writable shared mapping would be shared with every worker: {line.strip()}")


def _unshare(req: dict) -> None:
    """`unshare --mount --net --pid [--ipc] [--user --map-root-user]`, propagation private."""
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | (CLONE_NEWIPC if req["ipc"] else 0) \
        | (CLONE_NEWUSER if req["user"] else 0)
    if jailhelp.LIBC.unshare(flags) != 0:
        raise OSError(jailhelp.ctypes.get_errno(), "unshare")
    if req["user"]:
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    if jailhelp.LIBC.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(jailhelp.ctypes.get_errno(), "mount --make-rprivate /")


def _place(fds: dict[int, int]) -> None:
    """Each fd at its number (target -> current), every other fd but 0-2 closed."""
    high = {target: fcntl.fcntl(fd, fcntl.F_DUPFD, 64) for target, fd in fds.items()}
    for target, fd in high.items():
        os.dup2(fd, target)
    _close_all_but(fds)


def _close_all_but(fds) -> None:
    keep = sorted({0, 1, 2, *fds})
    for lo, hi in zip(keep, [*keep[1:], 1 << 20]):
        os.closerange(lo + 1, hi)


def _pid_one(req: dict, fds: dict[str, int]) -> None:
    """PID 1 of the new namespaces: the mounts, privileges dropped, then the harness."""
    try:
        _die_with_parent()
        work, env, opts = req["work"], req["env"], req["jail"]
        r = subprocess.run(["/bin/sh", str(JAIL), "-m", *opts, "--"], env=env, cwd=work, stdin=subprocess.DEVNULL)
        if r.returncode != 0:  # jail.sh said which step
            os._exit(r.returncode)
        os.chdir(work)
        os.environ.clear()
        os.environ.update(env, PWD=work, OLDPWD=work)  # as jail.sh's shell leaves them
        tempfile.tempdir = None
        uid = opts[opts.index("-u") + 1] if "-u" in opts else None
        jailhelp.drop_privileges(tuple(int(x) for x in uid.split(":")) if uid else None)
        if "-s" in opts:
            jailhelp.install_filter()
        # a new uid clears the parent-death signal: set again, then make sure the parent lived
        jailhelp._prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if select.select([fds["alive"]], [], [], 0)[0]:
            os._exit(128 + signal.SIGKILL)
        _place({CHANNEL_FDS[name]: fd for name, fd in fds.items() if name in CHANNEL_FDS})
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
    except BaseException as e:  # noqa: BLE001 - any failure ends the worker before untrusted code
        _fail("jail", e)
    _run(req, work)


def _run(req: dict, work: str) -> None:
    code = 0
    try:
        if req["mode"] == "probe":  # jail_probe's own probe, to compare with an exec'd worker's
            sys.argv = ["-c", *req["argv"]]
            exec(compile(PROBE, "<probe>", "exec"), {"__name__": "__main__"})  # noqa: S102 - kopt's own probe
        else:
            sys.modules["__main__"] = harness  # as in a worker run as `python -m kopt.sandboxes.harness`
            sys.argv = [harness.__file__, *req["argv"],
                        *(x for name, n in CHANNEL_FDS.items() if name in req["fds"] for x in (f"--fd-{name}", str(n)))]
            sys.path[0] = work
            harness.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - as python would: the traceback, exit 1
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _waiter(req: dict, fds: dict[str, int]) -> None:
    """The blank child after its request: namespaces, PID 1, then its wait status for kopt."""
    try:
        _unshare(req)
        alive_r, alive_w = os.pipe()  # PID 1 sees EOF here once this process is gone
        pid = os.fork()
    except BaseException as e:  # noqa: BLE001
        _fail("unshare", e)
    if pid == 0:
        os.close(alive_w)
        _pid_one(req, {**fds, "alive": alive_r})
    # as `unshare` does, the waiter keeps its copies of the channel: a worker that swaps its
    # request pipe for another leaves kopt writing into a pipe nobody reads (a timeout)
    _close_all_but({*fds.values(), alive_w})
    _, status = os.waitpid(pid, 0)
    os.write(fds["status"], struct.pack("i", status))
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # as `unshare --fork`: die of the same signal
        try:
            signal.signal(-code, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), -code)
    os._exit(code)


def _blank(ctl: socket.socket, taken: int) -> None:
    """A fresh fork waiting for one request; it becomes that worker."""
    try:
        msg, got, _, _ = socket.recv_fds(ctl, 1 << 16, MAX_FDS)
    except OSError:
        os._exit(0)
    if not msg:
        os._exit(0)  # kopt closed its end
    try:
        req = json.loads(msg)
        fds = dict(zip(req["fds"], got, strict=True))
        os.dup2(fds["stdout"], 1)
        os.dup2(fds["stdout"], 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        _enter(req)
        _nothing_shared()
        ctl.send(json.dumps({"pid": os.getpid()}).encode())
    except BaseException as e:  # noqa: BLE001
        try:
            ctl.send(json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())
        finally:
            os.write(taken, b"t")
            os._exit(1)
    ctl.close()
    os.write(taken, b"t")
    os.close(taken)
    _waiter(req, fds)


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def main() -> None:
    ctl = socket.socket(fileno=int(sys.argv[1]))
    # the zygote only imports and forks; each fork is single-threaded and runs no thread's work
    warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
    imported = False
    while True:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _blank(ctl, w)
        os.close(w)
        if not imported:  # the first fork (kopt's probe) runs while torch is imported here
            import torch  # noqa: F401, PLC0415 - heavy: the one import every worker shares

            imported = True
        while not select.select([r], [], [], 5)[0]:
            _reap()
        taken = os.read(r, 1) == b"t"
        os.close(r)
        _reap()
        if not taken:
            break
    os._exit(0)


if __name__ == "__main__":
    main()
