"""kopt's side of the zygote (zygote.py): one per worker environment, started once, asked for
each KernelBench harness worker instead of exec'ing a fresh python that imports torch again.

A zygote is used only after jail_probe's own probe, run in one of its forks, finds exactly
the protections an exec'd worker has (`probe_through`); otherwise, or when it fails in any
way, the worker is exec'd as before. On by default; KOPT_ZYGOTE=0 turns it off.
"""
from __future__ import annotations

import atexit
import json
import os
import queue
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading

from kopt.sandboxes.jail_probe import jail_features, probe_through
from kopt.sandboxes.jail_setup import namespace_prefix, work_parent
from kopt.sandboxes.worker_limits import die_with

HARNESS_ARGV = [sys.executable, "-m", "kopt.sandboxes.harness"]
PER_WORKER_ENV = ("HOME", "TMPDIR", "KOPT_CACHE_DIR", "TORCH_EXTENSIONS_DIR")
CHANNEL = ("in", "out", "alarm", "shm", "pass")  # zygote.CHANNEL_FDS: fds 3..7 in the worker
MAX_ZYGOTES = 3  # worker environments kept warm (threads, TRITON_INTERPRET, ...)
REFUSED: dict[str, str] = {}  # why a zygote was not used (environment key -> reason), for `kopt doctor`


def enabled() -> bool:
    return os.environ.get("KOPT_ZYGOTE", "1") != "0"


class ForkedProc:
    """A zygote's worker, watched as subprocess.Popen is: `pid` is its session's leader (the
    waiter outside its PID namespace), `returncode` comes from the status pipe the waiter
    writes when the worker ends (EOF without it: the waiter was killed)."""

    def __init__(self, pid: int, args: list[str], stdout_fd: int, status_fd: int):
        self.pid, self.args, self.returncode = pid, args, None
        self.stdout = os.fdopen(stdout_fd, "rb")
        self._status = status_fd

    def _collect(self) -> None:
        data = os.read(self._status, 4)
        os.close(self._status)
        self.returncode = os.waitstatus_to_exitcode(struct.unpack("i", data)[0]) if len(data) == 4 else -9

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._status], [], [], 0)[0]:
            self._collect()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._status], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(self.args, timeout)
            self._collect()
        return self.returncode


def _spawner(jobs: queue.Queue) -> None:
    """Starts zygotes from one thread that lives as long as kopt: their SIGKILL-on-parent-death
    fires when the starting *thread* ends, and evaluations run in pool threads."""
    while True:
        fn, box, done = jobs.get()
        try:
            box.append(fn())
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box.append(e)
        done.set()


_JOBS: queue.Queue = queue.Queue()
_SPAWNER = threading.Thread(target=_spawner, args=(_JOBS,), daemon=True, name="kopt-zygote-spawner")
_LOCK = threading.Lock()
_ZYGOTES: dict[tuple, Zygote] = {}


def _in_spawner(fn):
    with _LOCK_SPAWN:
        if not _SPAWNER.is_alive():
            _SPAWNER.start()
    box: list = []
    done = threading.Event()
    _JOBS.put((fn, box, done))
    if not done.wait(60) or isinstance(box[0], BaseException):
        raise OSError(f"the zygote did not start: {box[0] if box else 'timeout'}")
    return box[0]


_LOCK_SPAWN = threading.Lock()


def _forget() -> None:
    """In a fork of kopt: the zygotes, their sockets and the spawner thread are the parent's;
    the child starts its own when it needs one (sharing a socket would cross the replies)."""
    global _JOBS, _SPAWNER, _LOCK, _LOCK_SPAWN, _ZYGOTES
    for z in _ZYGOTES.values():
        z.ctl.close()
    _JOBS, _LOCK, _LOCK_SPAWN, _ZYGOTES = queue.Queue(), threading.Lock(), threading.Lock(), {}
    _SPAWNER = threading.Thread(target=_spawner, args=(_JOBS,), daemon=True, name="kopt-zygote-spawner")


os.register_at_fork(after_in_child=_forget)


class Zygote:
    """One zygote process and the control socket to it (one request at a time)."""

    def __init__(self, env: dict[str, str]):
        self.home = tempfile.mkdtemp(prefix="kopt-zygote-", dir=work_parent())
        self.ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent = os.getpid()

        def start():
            return subprocess.Popen([sys.executable, "-m", "kopt.sandboxes.zygote", str(theirs.fileno())],
                                    cwd=self.home, env={**env, "HOME": self.home, "TMPDIR": self.home},
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    pass_fds=(theirs.fileno(),), start_new_session=True,
                                    preexec_fn=lambda: die_with(parent))

        try:
            self.proc = _in_spawner(start)
        finally:
            theirs.close()
        self.lock = threading.Lock()
        self.verified: bool | None = None

    def spawn(self, req: dict, fds: dict[str, int], timeout: float = 120.0) -> int:
        """The pid of a fresh fork serving `req` (OSError when the zygote cannot)."""
        names = list(fds)
        with self.lock:
            self.ctl.settimeout(timeout)
            socket.send_fds(self.ctl, [json.dumps({**req, "fds": names}).encode()], [fds[n] for n in names])
            reply = self.ctl.recv(1 << 16)
        if not reply:
            raise OSError("the zygote is gone")
        answer = json.loads(reply)
        if "pid" not in answer:
            raise OSError(f"the zygote refused: {answer.get('error', answer)}")
        return int(answer["pid"])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self.ctl.close()
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.home, ignore_errors=True)


@atexit.register
def _close_all() -> None:
    """At kopt's exit: the zygotes go (their forks die with them) and so do their folders."""
    with _LOCK:
        while _ZYGOTES:
            _ZYGOTES.popitem()[1].close()


def _request(mode: str, argv: list[str], jail_args: list[str], work: str, env: dict[str, str],
             cgroups: list[str], limits: dict | None, cpus: set[int] | None) -> dict:
    prefix = namespace_prefix()
    return {"mode": mode, "argv": argv, "jail": jail_args, "work": work, "env": env, "cgroups": cgroups,
            "limits": limits, "cpus": sorted(cpus or os.sched_getaffinity(0)),
            "user": "--user" in prefix, "ipc": "--ipc" in prefix}


def _fork(zygote: Zygote, req: dict, fds: dict[str, int], args: list[str]) -> ForkedProc:
    out_r, out_w = os.pipe()
    st_r, st_w = os.pipe()
    try:
        pid = zygote.spawn(req, {**fds, "stdout": out_w, "status": st_w})
    except BaseException:
        for fd in (out_r, st_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(st_w)
    return ForkedProc(pid, args, out_r, st_r)


def _probe(zygote: Zygote, env: dict[str, str]) -> None:
    """jail_probe's probe in the zygote's first fork (made before it imports torch, so the two
    overlap): the zygote is used only if that fork has exactly the protections an exec'd
    worker has. Every later fork takes the same steps and reads its own capabilities, ids and
    no-new-privs back (jailhelp.drop_privileges) before the harness runs."""
    jail = jail_features()
    expected = jail[1] if jail else None

    def run(jail_args: list[str], probe_args: list[str]):
        work = jail_args[-3]
        proc = _fork(zygote, _request("probe", probe_args, jail_args, work, {**env, "HOME": work, "TMPDIR": work},
                                      [], None, None), {}, ["probe"])
        out = proc.stdout.read()
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            rc = proc.wait(10)
        proc.stdout.close()
        text = out.decode(errors="replace")
        return rc, text, text

    got, why = probe_through(run)
    zygote.verified = expected is not None and got == expected
    if not zygote.verified:
        REFUSED[_key(env)] = why or f"its forks' protections {got} differ from an exec'd worker's {expected}"


def _key(env: dict[str, str]) -> tuple:
    return tuple(sorted((k, v) for k, v in env.items() if k not in PER_WORKER_ENV))


def _zygote_for(env: dict[str, str]) -> Zygote | None:
    key = _key(env)
    base = dict(key)
    with _LOCK:
        z = _ZYGOTES.get(key)
        if z is not None and not z.alive():
            _ZYGOTES.pop(key).close()
            z = None
        if z is None:
            if key in REFUSED:
                return None
            while len(_ZYGOTES) >= MAX_ZYGOTES:
                _ZYGOTES.pop(next(iter(_ZYGOTES))).close()
            z = _ZYGOTES[key] = Zygote(base)
            _probe(z, base)
    return z if z.verified else None


verified_zygote = _zygote_for  # `kopt doctor` asks for one as a worker would (None: REFUSED says why)


def start(argv: list[str], jail_args: list[str], work: str, env: dict[str, str], cgroups: list[str],
          limits: dict, cpus: set[int] | None, fds: dict[str, int]) -> ForkedProc | None:
    """The harness worker `argv` (HARNESS_ARGV + its options) as a zygote's fork, jailed by
    `jail_args` (jail.sh's, up to `--`), or None: start it the usual way."""
    if argv[:3] != HARNESS_ARGV or not enabled():
        return None
    try:
        zygote = _zygote_for(env)
        if zygote is None:
            return None
        req = _request("harness", argv[3:], jail_args, work, env, cgroups, limits, cpus)
        names = {n: fds[n] for n in CHANNEL if n in fds}
        args = [*argv, *(x for i, n in enumerate(CHANNEL) if n in names for x in (f"--fd-{n}", str(3 + i)))]
        proc = _fork(zygote, req, names, args)
        if os.path.isdir(zygote.home):  # the zygote has imported everything: its folder can go
            shutil.rmtree(zygote.home, ignore_errors=True)  # (a kopt killed never gets to close it)
        return proc
    except (OSError, ValueError) as e:
        REFUSED.setdefault(_key(env), f"failed: {e}")
        return None
