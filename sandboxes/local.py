"""The local sandbox: start one untrusted worker process and watch it.

Containment, readable in one screen: a new session (so the whole group can be killed),
rlimits and cgroups (worker_limits.py), a scrubbed environment whose HOME and TMPDIR are a
private temp dir, and -- where `unshare` works -- fresh network, PID and IPC namespaces, so
the worker has no network, every process it starts dies with it (it is PID 1 of its
namespace) and no SysV object outlives it. Where mounts work too, jail.sh adds the rest
(jail_setup.py builds its options); `jail_features()` (jail_probe.py) probes once which of
its protections this host gives, and each Worker says which it got (`protections`).
"""
from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from kopt.sandboxes import fs_walk, zygote_client
from kopt.sandboxes.jail_probe import jail_features, protections
from kopt.sandboxes.jail_setup import (
    default_hidden,
    jail_command,
    jail_options,
    namespace_prefix,
    outside_system,
    runtime_paths,
    work_parent,
)
from kopt.sandboxes.protocol import widen_pipe
from kopt.sandboxes.worker_limits import Cgroups, Limits, _limit_self, die_with

SAFE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TERM", "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "CUDA_PATH",
                 "LD_LIBRARY_PATH", "TRITON_INTERPRET", "CC", "CXX", "SYSTEMROOT")


MAX_CACHE_ENTRIES = 20_000  # files and folders in a build folder: no size cap sees 50,000 empty .o files


def cache_problem(path: str, cap_mb: float, worker: Worker | None = None) -> str | None:
    """What is wrong with a candidate's build folder (too large, or too many entries), or None.
    With the WORKER, files it deleted but holds open on the folder's disk count too."""
    mb, entries = fs_walk.usage(path)
    mb += worker.unlinked_mb(path) if worker is not None else 0.0
    if mb > cap_mb:
        return f"the solution wrote {mb:.0f} MB into its build folder (at most {cap_mb:g} MB"
    if entries > MAX_CACHE_ENTRIES:
        return f"the solution made {entries} files and folders in its build folder (at most {MAX_CACHE_ENTRIES}"
    return None


def scrubbed_env(home: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in SAFE_ENV_KEYS if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    # USER/LOGNAME: getpass.getuser() (torch.compile's cache path) needs no passwd entry
    env.update(HOME=home, TMPDIR=home, USER="kopt-worker", LOGNAME="kopt-worker", PYTHONDONTWRITEBYTECODE="1",
               PYTHONNOUSERSITE="1")
    env.update(extra or {})
    return env


class _Tail:
    """Keeps the first and last bytes of a stream; never buffers it whole."""

    def __init__(self, limit: int):
        self.limit, self.head, self.tail, self.total = limit, b"", b"", 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if len(self.head) < self.limit // 2:
            take = self.limit // 2 - len(self.head)
            self.head += chunk[:take]
            chunk = chunk[take:]
        self.tail = (self.tail + chunk)[-self.limit // 2:]

    def text(self) -> str:
        gap = self.total - len(self.head) - len(self.tail)
        mid = f"\n... [{gap} bytes cut] ...\n".encode() if gap > 0 else b""
        return (self.head + mid + self.tail).decode(errors="replace")


@dataclass
class Worker:
    """A running sandboxed worker with a private duplex channel (to_fd, from_fd)."""

    proc: subprocess.Popen
    to_fd: int
    from_fd: int
    alarm_fd: int
    workdir: Path
    output: _Tail
    isolated: bool
    jailed: bool = False
    cgroup: Cgroups | None = None
    cache_dir: str | None = None
    cache_mb: int | None = 512
    _drain: threading.Thread | None = field(default=None, repr=False)
    protections: dict[str, bool] = field(default_factory=dict)  # PROTECTIONS -> whether this worker has it
    shm_fd: int | None = None  # a memfd both ends hold: large payloads go there (protocol.send)
    pass_fd: int | None = None  # kopt's end of a socket pair: a call's sealed inputs go there (sealed_inputs)
    evict_at_exit: bool = False  # Limits.evict_at_exit: the cgroup's page cache dropped when it ends

    def namespace_pids(self) -> list[int]:
        """Every live process in the worker's PID namespace except its PID 1."""
        root = self.root_pid()
        if root is None:
            return []
        try:
            ns = os.readlink(f"/proc/{root}/ns/pid")
        except OSError:
            return []
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) not in (root, self.proc.pid):
                try:
                    if os.readlink(f"/proc/{entry}/ns/pid") == ns and _alive(int(entry)):
                        out.append(int(entry))
                except OSError:
                    pass
        return out if self.isolated else []

    def root_pid(self) -> int | None:
        """Host pid of the python worker (the child of `unshare`, or the process itself)."""
        if not self.isolated:
            return self.proc.pid
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(kids[0]) if kids else None

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker's whole tree, from the kernel: its cgroup's
        where there is one, else the sum over its live processes (all their threads)."""
        usage = self.cgroup.cpu_seconds() if self.cgroup else None
        if usage is not None:
            return usage
        total = 0.0
        for pid in (self.root_pid(), *self.namespace_pids()):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass
        return total

    def anonymous_kib(self) -> int | None:
        """Anonymous memory resident in the worker's live processes (KiB, the kernel's RssAnon):
        it grows only by pages the kernel allocated and zeroed, never by the shared zero page a
        read fault maps (red team 13 padded a fault count with those)."""
        return self._status_kib(("RssAnon:",))

    def _status_kib(self, fields: tuple[str, ...]) -> int | None:
        """The sum of these `/proc/<pid>/status` fields (KiB) over the worker's live processes,
        or None where /proc shows none of them."""
        total, seen = 0, False
        for pid in (self.root_pid(), *self.namespace_pids()):
            try:
                lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            except (OSError, TypeError):
                continue
            for line in lines:
                if line.startswith(fields):
                    total, seen = total + int(line.split()[1]), True
        return total if seen else None

    def unlinked_mb(self, folder: str) -> float:
        """MiB of files deleted but still open or mapped in the worker's processes, on the disk
        FOLDER is on or named under FOLDER (a repository tree the worker sees through an
        overlay: its files are on the overlay's own device, red team 19): no walk of the folder
        sees them, yet they stay on the host's disk until the worker ends (red team 11: 3 x 512
        MiB past a 512 MB cap, unlinked at once)."""
        try:
            dev = os.stat(folder).st_dev
        except OSError:
            return 0.0
        sizes: dict[int, int] = {}
        for pid in (self.root_pid(), *self.namespace_pids()):
            for inode, size in _unlinked_files(pid, dev, os.path.join(folder, "")):
                sizes[inode] = max(sizes.get(inode, 0), size)
        return sum(sizes.values()) / 2**20

    def resident_mb(self) -> float | None:
        """Anonymous and shared-memory pages resident in the worker's processes (MiB), from the
        kernel: what the worker holds that no file on disk backs. None where /proc hides it."""
        kib = self._status_kib(("RssAnon:", "RssShmem:"))
        return None if kib is None else kib / 1024

    def thread_count(self) -> int:
        pid = self.root_pid()
        try:
            return len(os.listdir(f"/proc/{pid}/task"))
        except (OSError, TypeError):
            return 0

    def pin(self, cpus: set[int]) -> None:
        """Every thread of the worker onto `cpus`, from kopt's side (the jail's seccomp filter
        keeps the worker from calling sched_setaffinity itself); threads it starts later
        inherit the mask."""
        pid = self.root_pid()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except (OSError, TypeError):
            return
        for tid in tids:
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:
                pass

    def allowed_cpus(self) -> set[int] | None:
        """The cores any thread of the worker's processes may run on (the union of their
        Cpus_allowed_list, from the kernel), or None where /proc does not show them."""
        cores: set[int] = set()
        seen = False
        for pid in (self.root_pid(), *self.namespace_pids()):
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except (OSError, TypeError):
                continue
            for tid in tids:
                try:
                    status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("Cpus_allowed_list:"):
                        cores |= cpu_list(line.split(":", 1)[1])
                        seen = True
        return cores if seen else None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for fd in (self.to_fd, self.from_fd, self.alarm_fd, *(f for f in (self.shm_fd, self.pass_fd) if f is not None)):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._drain:
            self._drain.join(timeout=2)
        if self.cgroup:
            self.cgroup.remove(evict=self.evict_at_exit)
        fs_walk.remove_tree(self.workdir)
        if self.cache_dir and self.cache_mb is not None and cache_problem(self.cache_dir, self.cache_mb):
            fs_walk.remove_tree(self.cache_dir)  # a disk filler keeps nothing


def _unlinked_files(pid: int | None, dev: int, under: str):
    """(inode, bytes) of each deleted file on device DEV or named under UNDER (a folder path
    ending in "/") that process PID holds open (its disk blocks) or mapped (the mapping's
    extent: a bound from below, the fd may be closed)."""
    if pid is None:
        return
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        fds = []
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if not target.endswith(" (deleted)"):
                continue
            st = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if (st.st_dev == dev or target.startswith(under)) and stat.S_ISREG(st.st_mode) and st.st_nlink == 0:
            yield st.st_ino, max(st.st_blocks * 512, 0)
    want = f"{os.major(dev):02x}:{os.minor(dev):02x}"
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read(8 << 20).splitlines()
    except OSError:
        return
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) == 6 and (parts[3] == want or parts[5].startswith(under)) and parts[5].endswith(" (deleted)"):
            lo, _, hi = parts[0].partition("-")
            try:
                yield int(parts[4]), int(hi, 16) - int(lo, 16) + int(parts[2], 16)
            except ValueError:
                continue


def cpu_list(text: str) -> set[int]:
    """Cores of a kernel CPU list ("0-3,8")."""
    out: set[int] = set()
    for part in text.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _state(stat: str) -> str:
    try:
        return Path(stat).read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def _alive(pid: int) -> bool:
    """Whether any thread of `pid` runs: a process whose main thread exited (a zombie leader)
    while another thread goes on is alive."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    return any(_state(f"/proc/{pid}/task/{tid}/stat") not in ("Z", "X", "?") for tid in tids)


def _exec(cmd: list[str], workdir: Path, env: dict[str, str], cgroup: Cgroups, limits: Limits,
          cpus: set[int] | None, channel: dict[str, int]) -> subprocess.Popen:
    parent = os.getpid()

    def preexec():
        die_with(parent)
        cgroup.enter()
        _limit_self(limits)
        if cpus:
            os.sched_setaffinity(0, cpus)

    return subprocess.Popen(cmd, cwd=workdir, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            pass_fds=tuple(channel.values()), start_new_session=True, preexec_fn=preexec)


def _pass_pair() -> list[int]:
    """The socket pair a call's sealed inputs come on, kopt's end first. Connected packets, not
    datagrams: a datagram socket sends wherever sendto() names, and the worker's end reached a
    host unix socket (red team 28); kopt's end refuses to receive, so nothing the worker sends
    (an fd to keep past its exit included) is queued on kopt's side."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.shutdown(socket.SHUT_RD)
    return [ours.detach(), theirs.detach()]


def start_worker(argv: list[str], limits: Limits, env_extra: dict[str, str] | None = None,
                 cpus: set[int] | None = None, shm: bool = False) -> Worker:
    """Start `argv` sandboxed; it receives --fd-in/--fd-out/--fd-alarm for the channel (and
    --fd-shm, a memfd for large payloads, and --fd-pass, a socket a call's inputs come on, with `shm`)."""
    workdir = Path(tempfile.mkdtemp(prefix="kopt-sbx-", dir=work_parent()))
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    alarm_r, alarm_w = os.pipe()
    for fd in (to_w, from_w):
        widen_pipe(fd)
    prefix = () if limits.network else namespace_prefix()
    cmd = [*argv, "--fd-in", str(to_r), "--fd-out", str(from_w), "--fd-alarm", str(alarm_w)]
    shm_fd = os.memfd_create("kopt-io", 0) if shm else None
    pass_ends = _pass_pair() if shm else []
    if shm_fd is not None:
        cmd += ["--fd-shm", str(shm_fd), "--fd-pass", str(pass_ends[1])]
    env = scrubbed_env(str(workdir), env_extra)
    jail = jail_features() if prefix else None
    jail_args: list[str] = []
    if jail:
        features = jail[0]
        upper = [limits.cache_overlay] if limits.cache_overlay else []
        hide = [p for p in (*limits.hide_paths, *(outside_system()[1] if "home" in features else default_hidden()),
                            *upper) if os.path.exists(p)]
        allowed = [*runtime_paths(), *limits.read_paths, *(env.get("PYTHONPATH", "").split(os.pathsep)),
                   *([limits.cache_dir] if limits.cache_dir else []), *upper]
        opts = jail_options(features, str(workdir), [os.path.realpath(a) for a in allowed if a], limits.gpu,
                            overlay=limits.cache_overlay)
        jail_args = [*opts, str(limits.tmp_mb), str(workdir), limits.cache_dir or "", *hide]
        cmd = jail_command(prefix, jail_args, cmd)
    else:
        cmd = [*prefix, *cmd]
    if limits.cache_dir:
        env.update(KOPT_CACHE_DIR=limits.cache_dir,
                   TORCH_EXTENSIONS_DIR=str(Path(limits.cache_dir) / "torch_extensions"))
    # the memory cap covers the whole tree, the private work dir's files (tmpfs) included
    cgroup = Cgroups(limits.nproc, limits.memory_mb if limits.memory_mb < 1 << 30 else None, limits.cpu_quota)
    channel = {"in": to_r, "out": from_w, "alarm": alarm_w,
               **({"shm": shm_fd, "pass": pass_ends[1]} if shm_fd is not None else {})}
    # a KernelBench harness worker forks from a pre-imported zygote where that is on and gives a
    # worker the same protections (zygote_client.py); anything else is exec'd
    proc = zygote_client.start(argv, jail_args, str(workdir), env, [str(p) for p in cgroup.paths],
                               limits.__dict__, cpus, channel) if jail and not limits.gpu else None
    if proc is None:
        proc = _exec(cmd, workdir, env, cgroup, limits, cpus, channel)
    for fd in (to_r, from_w, alarm_w, *pass_ends[1:]):
        os.close(fd)
    tail = _Tail(limits.output_bytes)

    def drain():
        for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):
            tail.feed(chunk)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    return Worker(proc, to_w, from_r, alarm_r, workdir, tail, bool(prefix), bool(jail), cgroup, limits.cache_dir,
                  limits.cache_mb, t, protections(bool(jail), bool(prefix)), shm_fd, (pass_ends or [None])[0],
                  limits.evict_at_exit)
