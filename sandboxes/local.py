"""The local sandbox: one untrusted worker process with OS limits.

Containment, readable in one screen: a new session (so the whole group can be killed),
rlimits (address space, CPU, open files, file size, processes), a scrubbed environment
whose HOME and TMPDIR are a private temp dir, and -- where `unshare` works -- fresh
network, PID and IPC namespaces, so the worker has no network, every process it starts
dies with it (it is PID 1 of its namespace) and no SysV object outlives it. Where mounts
work too, jail.sh adds the rest (see its header); `jail_features()` probes once which of
its protections this host gives, and each Worker says which it got (`protections`).
"""
from __future__ import annotations

import ctypes
import functools
import glob
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: a forked child must not import


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
    read_paths: tuple[str, ...] = ()  # host files/folders the worker must read (a task file)
    gpu: bool = False  # the GPU's device nodes in the worker's /dev


SAFE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TERM", "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "CUDA_PATH",
                 "LD_LIBRARY_PATH", "TRITON_INTERPRET", "CC", "CXX", "SYSTEMROOT")


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
    first) stands for kopt's own code only."""
    root = os.path.realpath(Path(__file__).parents[1])
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path,
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
                 extra_blanks: tuple[str, ...] = ()) -> list[str]:
    """jail.sh's options for the protections in `features`: with "home", every folder but the
    system's is blanked, and only `allowed` (and the work dir) bound back."""
    opts: list[str] = ["-p", os.path.realpath(sys.executable)]
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
    "sockets": [can(lambda: sock(f)) for f in (socket.AF_UNIX, socket.AF_NETLINK, getattr(socket, "AF_VSOCK", 40))],
    "keyring": can(key)}))
"""
# which jail.sh step (its `kopt-jail: STEP` line) needs which feature
STEP_FEATURE = (("home:", "home"), ("dev:", "dev"), ("idmap", "uid"), ("seccomp", "seccomp"))
# the protections each feature gives, and why the probe dropped a feature (for `kopt doctor`)
FEATURE_PROTECTIONS = {"uid": ("unprivileged uid",), "home": ("home allow-list",), "dev": ("minimal /dev",),
                       "seccomp": ("unix/vsock/netlink block", "keyring blocked")}
REFUSED: dict[str, str] = {}


def _probe_once(prefix: tuple[str, ...], features: frozenset[str]) -> tuple[dict | None, str]:
    from kopt.sandboxes.jailhelp import ARCHES

    add_key = ARCHES.get(os.uname().machine, (0, {"add_key": 248}))[1]["add_key"]
    with tempfile.TemporaryDirectory(dir=work_parent()) as d:
        for sub in ("work", "cache", "home/allowed"):
            os.makedirs(f"{d}/{sub}")
        for f in ("secret", "home/secret", "home/allowed/file"):
            Path(d, f).write_text("secret")
        os.chmod(d, 0o755)
        opts = jail_options(features, f"{d}/work", [*runtime_paths(), f"{d}/home/allowed", f"{d}/cache"],
                            gpu=False, extra_blanks=(f"{d}/home",))
        cmd = [*prefix, "--mount", "/bin/sh", str(JAIL), *opts, "16", f"{d}/work", f"{d}/cache", f"{d}/secret", "--",
               os.path.realpath(sys.executable), "-I", "-S", "-c", PROBE, d, str(add_key)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, str(e)
        line = next((x for x in r.stdout.splitlines() if x.startswith("KOPT-PROBE ")), None)
        if r.returncode != 0 or line is None:
            return None, r.stderr
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
    if out is None or out["secret"] or out["escaped"] or not out["wrote"] or not out["private"] \
            or not out["cache"] or not out["cache_host"]:
        return None
    return frozenset(features), {
        "ipc namespace": out["ipc"] != os.readlink("/proc/self/ns/ipc"),
        "unprivileged uid": out["host_uid"] != 0,
        "home allow-list": "home" in features and out["home_allowed"] and not out["home_secret"],
        "minimal /dev": set(out["dev"]) <= set(MINIMAL_DEV),
        "unix/vsock/netlink block": not any(out["sockets"]),
        "keyring blocked": not out["keyring"],
        "fresh /proc": out["pids"] <= 3,
    }


def can_jail() -> bool:
    """Whether jail.sh works here (see jail_features)."""
    return jail_features() is not None


def protections(jailed: bool, isolated: bool) -> dict[str, bool]:
    """Which of PROTECTIONS a worker started this way has."""
    if jailed:
        return dict(jail_features()[1])
    return {name: name == "ipc namespace" and isolated and "--ipc" in namespace_prefix() for name in PROTECTIONS}


class Cgroups:
    """Per-worker cgroups (v1 or v2): a process cap (`pids`) and a memory cap (`memory`) for
    the whole tree -- rlimits are per process and root ignores RLIMIT_NPROC."""

    def __init__(self, max_pids: int, memory_mb: int | None):
        self.paths: list[Path] = []
        wanted: dict[str, tuple[str, str] | None] = {"pids": ("pids.max", str(max_pids))}
        if memory_mb:
            wanted["memory"] = ("memory.limit_in_bytes" if Path("/sys/fs/cgroup/memory").is_dir() else "memory.max",
                                str(memory_mb << 20))
        wanted["cpuacct"] = None  # v1: the tree's CPU time (v2 has cpu.stat in every cgroup)
        made: dict[Path, Path] = {}  # v2: one hierarchy, so one cgroup for every controller
        for controller, setting in wanted.items():
            base = _cgroup_base(controller)
            if base is None:
                continue
            try:
                path = made.get(base) or Path(tempfile.mkdtemp(prefix="kopt-", dir=base))
                if setting:
                    (path / setting[0]).write_text(setting[1])
            except OSError:
                continue
            if base not in made:
                made[base] = path
                self.paths.append(path)

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

    def cpu_seconds(self) -> float | None:
        """CPU time of every process that ever ran in the tree (None without a CPU-accounting
        cgroup): a process the worker hides from /proc still counts here."""
        for path in self.paths:
            if (path / "cpuacct.usage").exists():
                text = _read(path / "cpuacct.usage").strip()
                return int(text) / 1e9 if text.isdigit() else None
            for line in _read(path / "cpu.stat").splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
        return None

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
    cache_mb: int = 512
    _drain: threading.Thread | None = field(default=None, repr=False)
    protections: dict[str, bool] = field(default_factory=dict)  # PROTECTIONS -> whether this worker has it
    shm_fd: int | None = None  # a memfd both ends hold: large payloads go there (protocol.send)

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
        for fd in (self.to_fd, self.from_fd, self.alarm_fd, *([self.shm_fd] if self.shm_fd is not None else [])):
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


def _die_with(parent: int) -> None:
    """In the child before exec: SIGKILL when kopt dies (killed included), so no worker outlives
    it in its own session. The kernel sends it when the forking *thread* ends: evaluations run
    in pool threads, which outlive the workers they start."""
    _LIBC.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # kopt died before the call above
        os.kill(os.getpid(), signal.SIGKILL)


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
                 cpus: set[int] | None = None, shm: bool = False) -> Worker:
    """Start `argv` sandboxed; it receives --fd-in/--fd-out/--fd-alarm for the channel (and
    --fd-shm, a memfd for large payloads, with `shm`)."""
    workdir = Path(tempfile.mkdtemp(prefix="kopt-sbx-", dir=work_parent()))
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    alarm_r, alarm_w = os.pipe()
    from kopt.sandboxes.protocol import widen_pipe

    for fd in (to_w, from_w):
        widen_pipe(fd)
    prefix = () if limits.network else namespace_prefix()
    cmd = [*argv, "--fd-in", str(to_r), "--fd-out", str(from_w), "--fd-alarm", str(alarm_w)]
    shm_fd = os.memfd_create("kopt-io", 0) if shm else None
    if shm_fd is not None:
        cmd += ["--fd-shm", str(shm_fd)]
    env = scrubbed_env(str(workdir), env_extra)
    jail = jail_features() if prefix else None
    if jail:
        features = jail[0]
        hide = [p for p in (*limits.hide_paths, *(outside_system()[1] if "home" in features else default_hidden()))
                if os.path.exists(p)]
        allowed = [*runtime_paths(), *limits.read_paths, *(env.get("PYTHONPATH", "").split(os.pathsep)),
                   *([limits.cache_dir] if limits.cache_dir else [])]
        opts = jail_options(features, str(workdir), [os.path.realpath(a) for a in allowed if a], limits.gpu)
        cmd = [*prefix, "--mount", "/bin/sh", str(JAIL), *opts, str(limits.tmp_mb), str(workdir),
               limits.cache_dir or "", *hide, "--", *cmd]
    else:
        cmd = [*prefix, *cmd]
    if limits.cache_dir:
        env.update(KOPT_CACHE_DIR=limits.cache_dir,
                   TORCH_EXTENSIONS_DIR=str(Path(limits.cache_dir) / "torch_extensions"))
    # the memory cap covers the whole tree, the private work dir's files (tmpfs) included
    cgroup = Cgroups(limits.nproc, limits.memory_mb if limits.memory_mb < 1 << 30 else None)

    parent = os.getpid()

    def preexec():
        _die_with(parent)
        cgroup.enter()
        _limit_self(limits)
        if cpus:
            os.sched_setaffinity(0, cpus)

    proc = subprocess.Popen(cmd, cwd=workdir, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            pass_fds=(to_r, from_w, alarm_w, *([shm_fd] if shm_fd is not None else [])),
                            start_new_session=True, preexec_fn=preexec)
    for fd in (to_r, from_w, alarm_w):
        os.close(fd)
    tail = _Tail(limits.output_bytes)

    def drain():
        for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):
            tail.feed(chunk)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    return Worker(proc, to_w, from_r, alarm_r, workdir, tail, bool(prefix), bool(jail), cgroup, limits.cache_dir,
                  limits.cache_mb, t, protections(bool(jail), bool(prefix)), shm_fd)
