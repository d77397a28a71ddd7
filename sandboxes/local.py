"""The local sandbox: one untrusted worker process with OS limits.

Containment, readable in one screen: a new session (so the whole group can be killed),
rlimits (address space, CPU, open files, file size, processes), a scrubbed environment
whose HOME and TMPDIR are a private temp dir, and -- where `unshare` works -- fresh
network and PID namespaces, so the worker has no network and every process it starts
dies with it (it is PID 1 of its namespace).
"""
from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Limits:
    """Per-worker limits. Defaults are safe for a 2-core, 24 GiB machine."""

    wall_s: float = 300.0
    memory_mb: int = 8192
    nofile: int = 1024
    nproc: int = 512
    fsize_mb: int = 2048
    output_bytes: int = 64 << 10
    network: bool = False
    hide_paths: tuple[str, ...] = ()  # files/folders the worker must not see (mount namespace)
    tmp_mb: int = 2048  # size of the private tmpfs work dir inside the jail
    cache_mb: int = 512  # a build-cache folder larger than this after the run is discarded
    cache_dir: str | None = None  # host folder the worker may write (its own build cache)


SAFE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TERM", "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "CUDA_PATH",
                 "LD_LIBRARY_PATH", "TRITON_INTERPRET", "CC", "CXX", "SYSTEMROOT")


@functools.lru_cache(maxsize=1)
def namespace_prefix() -> tuple[str, ...]:
    """The `unshare` prefix that works here (net + pid namespaces), or () with none."""
    exe = shutil.which("unshare")
    if not exe:
        return ()
    candidates = [(exe, "--net", "--pid", "--fork", "--kill-child")]
    candidates.insert(0 if os.geteuid() != 0 else 1,
                      (exe, "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child"))
    for prefix in candidates:
        try:
            r = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return prefix
    return ()


JAIL = Path(__file__).with_name("jail.sh")
# Secrets a worker must never read even though the host's file system stays visible.
SENSITIVE_HOME = (".ssh", ".aws", ".azure", ".gnupg", ".netrc", ".docker", ".kube", ".config", ".git-credentials",
                  ".pypirc", ".bash_history", ".python_history", ".cache/huggingface", ".local/share/keyrings")


def default_hidden() -> list[str]:
    home = Path.home()
    return [str(home / name) for name in SENSITIVE_HOME]


@functools.lru_cache(maxsize=1)
def can_jail() -> bool:
    """Whether jail.sh works here: a hidden file unreadable, the host read-only, /tmp private."""
    prefix = namespace_prefix()
    if not prefix or not shutil.which("mount") or not shutil.which("setpriv"):
        return False
    with tempfile.TemporaryDirectory() as d:
        secret, work = Path(d) / "secret", Path(d) / "work"
        secret.write_text("secret")
        work.mkdir()
        probe = f"cat {secret} 2>/dev/null; touch {d}/escaped 2>/dev/null; touch {work}/ok && echo wrote"
        try:
            r = subprocess.run([*prefix, "--mount", "/bin/sh", str(JAIL), "16", str(work), "", str(secret),
                                "--", "/bin/sh", "-c", probe], capture_output=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return (r.returncode == 0 and b"secret" not in r.stdout and b"wrote" in r.stdout
                and not (Path(d) / "escaped").exists() and not (work / "ok").exists())


class Cgroups:
    """Per-worker cgroups (v1 or v2): a process cap (`pids`) and a memory cap (`memory`) for
    the whole tree -- rlimits are per process and root ignores RLIMIT_NPROC."""

    def __init__(self, max_pids: int, memory_mb: int | None):
        self.paths: list[Path] = []
        wanted = {"pids": ("pids.max", str(max_pids))}
        if memory_mb:
            wanted["memory"] = ("memory.limit_in_bytes" if Path("/sys/fs/cgroup/memory").is_dir() else "memory.max",
                                str(memory_mb << 20))
        for controller, (knob, value) in wanted.items():
            base = _cgroup_base(controller)
            if base is None:
                continue
            try:
                path = Path(tempfile.mkdtemp(prefix="kopt-", dir=base))
                (path / knob).write_text(value)
                self.paths.append(path)
            except OSError:
                continue

    @property
    def path(self) -> Path | None:
        return self.paths[0] if self.paths else None

    def memory_exceeded(self) -> bool:
        """Whether the tree hit its memory cap (the kernel's OOM killer acted or allocations failed)."""
        for path in self.paths:
            if (path / "memory.failcnt").exists():
                return _read(path / "memory.failcnt").strip() not in ("", "0")
            if (path / "memory.events").exists():
                return any(line.split()[0] == "oom_kill" and line.split()[1] != "0"
                           for line in _read(path / "memory.events").splitlines() if line.strip())
        return False

    def enter(self) -> None:
        """Called in the child before exec: it and all its descendants join the cgroups."""
        for path in self.paths:
            with open(path / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))

    def remove(self) -> None:
        import time

        for path in self.paths:
            for _ in range(100):
                try:
                    for pid in _read(path / "cgroup.procs").split():
                        os.kill(int(pid), signal.SIGKILL)
                    path.rmdir()
                    break
                except (OSError, ValueError):
                    time.sleep(0.05)


def _cgroup_base(controller: str) -> Path | None:
    """Where this process may create a child cgroup for `controller` (v1 first, then v2)."""
    v1 = Path("/sys/fs/cgroup") / controller
    if (v1 / "cgroup.procs").exists():
        for line in _read(Path("/proc/self/cgroup")).splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and controller in parts[1].split(","):
                own = v1 / parts[2].lstrip("/")
                if (own / "cgroup.procs").exists():
                    return own
        return v1
    v2 = Path("/sys/fs/cgroup")
    if controller in _read(v2 / "cgroup.subtree_control").split():
        return v2
    return None


def _folder_mb(path: str) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total / 2**20


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def scrubbed_env(home: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in SAFE_ENV_KEYS if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(HOME=home, TMPDIR=home, PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1")
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
    cache_mb: int = 512
    _drain: threading.Thread | None = field(default=None, repr=False)

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
                    if os.readlink(f"/proc/{entry}/ns/pid") == ns and _state(int(entry)) != "Z":
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
        """User + system CPU time of the worker process, all its threads, from the kernel."""
        try:
            fields = Path(f"/proc/{self.root_pid()}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError, TypeError):
            return 0.0

    def thread_count(self) -> int:
        pid = self.root_pid()
        try:
            return len(os.listdir(f"/proc/{pid}/task"))
        except (OSError, TypeError):
            return 0

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
        for fd in (self.to_fd, self.from_fd, self.alarm_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._drain:
            self._drain.join(timeout=2)
        if self.cgroup:
            self.cgroup.remove()
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.cache_dir and _folder_mb(self.cache_dir) > self.cache_mb:
            shutil.rmtree(self.cache_dir, ignore_errors=True)  # a disk filler keeps nothing


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def _limit_self(limits: Limits) -> None:
    def cap(res, value):
        try:
            resource.setrlimit(res, (value, value))
        except (ValueError, OSError):
            pass

    cap(resource.RLIMIT_AS, limits.memory_mb << 20)
    cap(resource.RLIMIT_CPU, int(limits.wall_s) + 5)
    cap(resource.RLIMIT_NOFILE, limits.nofile)
    cap(resource.RLIMIT_NPROC, limits.nproc)
    cap(resource.RLIMIT_FSIZE, limits.fsize_mb << 20)
    cap(resource.RLIMIT_CORE, 0)


def start_worker(argv: list[str], limits: Limits, env_extra: dict[str, str] | None = None,
                 cpus: set[int] | None = None) -> Worker:
    """Start `argv` sandboxed; it receives --fd-in/--fd-out/--fd-alarm for the channel."""
    workdir = Path(tempfile.mkdtemp(prefix="kopt-sbx-"))
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    alarm_r, alarm_w = os.pipe()
    from kopt.sandboxes.protocol import widen_pipe

    for fd in (to_w, from_w):
        widen_pipe(fd)
    prefix = () if limits.network else namespace_prefix()
    cmd = [*argv, "--fd-in", str(to_r), "--fd-out", str(from_w), "--fd-alarm", str(alarm_w)]
    env = scrubbed_env(str(workdir), env_extra)
    jailed = bool(prefix) and can_jail()
    if jailed:
        hide = [p for p in (*limits.hide_paths, *default_hidden()) if os.path.exists(p)]
        cmd = [*prefix, "--mount", "/bin/sh", str(JAIL), str(limits.tmp_mb), str(workdir), limits.cache_dir or "",
               *hide, "--", *cmd]
    else:
        cmd = [*prefix, *cmd]
    if limits.cache_dir:
        env.update(KOPT_CACHE_DIR=limits.cache_dir,
                   TORCH_EXTENSIONS_DIR=str(Path(limits.cache_dir) / "torch_extensions"))
    # the memory cap covers the whole tree, the private work dir's files (tmpfs) included
    cgroup = Cgroups(limits.nproc, limits.memory_mb if limits.memory_mb < 1 << 30 else None)

    def preexec():
        cgroup.enter()
        _limit_self(limits)
        if cpus:
            os.sched_setaffinity(0, cpus)

    proc = subprocess.Popen(cmd, cwd=workdir, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            pass_fds=(to_r, from_w, alarm_w), start_new_session=True, preexec_fn=preexec)
    for fd in (to_r, from_w, alarm_w):
        os.close(fd)
    tail = _Tail(limits.output_bytes)

    def drain():
        for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):
            tail.feed(chunk)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    return Worker(proc, to_w, from_r, alarm_r, workdir, tail, bool(prefix), jailed, cgroup, limits.cache_dir,
                  limits.cache_mb, t)
