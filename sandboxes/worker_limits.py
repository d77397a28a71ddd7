"""A worker's resource limits: the `Limits` it is started with, the rlimits it sets on itself
before exec, and the cgroups (process and memory caps, CPU accounting) its whole tree joins.
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import tempfile
import time
from dataclasses import dataclass
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
    # a build-cache folder larger than this (or of more entries: local.cache_problem) after the run is
    # discarded; None: never (a repository's tree holds the candidate itself)
    cache_mb: int | None = 512
    cache_dir: str | None = None  # host folder the worker may write (its own build cache)
    # an empty host folder (overlay_upper.make): the cache folder is seen through an overlay whose
    # upper layer it is, so the folder itself never changes (a repository's tree: jail.sh -o)
    cache_overlay: str | None = None
    read_paths: tuple[str, ...] = ()  # host files/folders the worker must read (a task file)
    gpu: bool = False  # the GPU's device nodes in the worker's /dev
    # evict the file pages the worker brought into the page cache when it ends (its cgroup's own
    # charge): a later evaluation then finds the host's page cache as this one found it
    evict_at_exit: bool = False
    # CPUs' worth of time the whole tree may use (a cgroup CPU quota), None: no cap. The
    # repository target runs the original's bench once slowed to learn which printed numbers
    # track its speed (a timing printed to the second never varies at one speed: red team 31)
    cpu_quota: float | None = None


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: a forked child must not import


def die_with(parent: int) -> None:
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


CPU_PERIOD_US = 100_000


class Cgroups:
    """Per-worker cgroups (v1 or v2): a process cap (`pids`) and a memory cap (`memory`) for
    the whole tree -- rlimits are per process and root ignores RLIMIT_NPROC -- and, asked
    for, a CPU quota (`cpu`) that slows the whole tree down."""

    def __init__(self, max_pids: int, memory_mb: int | None, cpu_quota: float | None = None):
        self.paths: list[Path] = []
        self.cpu_capped = False  # whether CPU_QUOTA was set
        wanted: dict[str, list[tuple[str, str]]] = {"pids": [("pids.max", str(max_pids))]}
        if memory_mb:
            v1 = Path("/sys/fs/cgroup/memory").is_dir()
            wanted["memory"] = [("memory.limit_in_bytes" if v1 else "memory.max", str(memory_mb << 20))]
        wanted["cpuacct"] = []  # v1: the tree's CPU time (v2 has cpu.stat in every cgroup)
        if cpu_quota:
            quota = max(1000, int(cpu_quota * CPU_PERIOD_US))
            wanted["cpu"] = ([("cpu.cfs_period_us", str(CPU_PERIOD_US)), ("cpu.cfs_quota_us", str(quota))]
                             if Path("/sys/fs/cgroup/cpu/cgroup.procs").exists()
                             else [("cpu.max", f"{quota} {CPU_PERIOD_US}")])
        made: dict[Path, Path] = {}  # v2: one hierarchy, so one cgroup for every controller
        for controller, settings in wanted.items():
            base = _cgroup_base(controller)
            if base is None:
                continue
            _sweep_once(base)
            try:
                path = made.get(base) or Path(tempfile.mkdtemp(prefix="kopt-", dir=base))
                if base not in made:
                    made[base] = path
                    self.paths.append(path)
                for name, value in settings:
                    (path / name).write_text(value)
            except OSError:
                continue
            self.cpu_capped |= controller == "cpu"

    @property
    def path(self) -> Path | None:
        return self.paths[0] if self.paths else None

    def memory_exceeded(self) -> bool:
        """Whether the tree hit its memory cap (the kernel's OOM killer acted or allocations failed)."""
        for path in self.paths:
            if (path / "memory.failcnt").exists():
                return _read(path / "memory.failcnt").strip() not in ("", "0")
            if (path / "memory.events").exists():
                return _fields(path / "memory.events").get("oom_kill", "0") != "0"
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

    def major_faults(self) -> int | None:
        """Major page faults of every process that ever ran in the tree (None without a memory
        cgroup): counted by the kernel as they happen, so a process nobody waits for (a child
        of a parent ignoring SIGCHLD, reaped by the kernel: red team 21) counts too."""
        got = self._memory_stat(("total_pgmajfault", "pgmajfault"))
        return got[0] if got else None

    def memory_cap_hits(self) -> int | None:
        """How often the tree's memory use hit its cap so far (memory.failcnt, v1; memory.events
        `max`, v2; None without a memory cgroup). At the cap the kernel reclaims the page cache
        charged to the tree, pages a run read from disk included (red team 22)."""
        for path in self.paths:
            if (path / "memory.failcnt").exists():
                text = _read(path / "memory.failcnt").strip()
                return int(text) if text.isdigit() else None
            events = _fields(path / "memory.events")
            if events.get("max", "").isdigit():
                return int(events["max"])
        return None

    def file_cache_pages(self) -> int | None:
        """Pages of disk files the tree's processes brought into the page cache, net (memory.stat
        cache / file less shmem, which is tmpfs; None without a memory cgroup). A page read from
        disk is charged to the cgroup of the process that read it, whatever reaps it and however
        it read (a buffered pread faults nothing: red team 21); a page read with O_DIRECT is not."""
        got = self._memory_stat(("total_cache", "file"), ("total_shmem", "shmem"))
        return (got[0] - got[1]) // 4096 if got else None

    def dirty_pages(self) -> int | None:
        """Pages of the tree's file cache waiting to be written (memory.stat dirty + writeback; None
        without a memory cgroup): what a run wrote and the file system's own blocks it changed
        (inode tables, bitmaps, folders: ~1,400 pages for 20,000 files made and removed, which
        the run's upper folder no longer holds; red team 23). A page is charged to the cgroup
        that brought it into the cache, so a fresh worker's dirty pages are pages its run put
        there: written, or read and then written -- file-system blocks a file's creation read
        from disk too (red team 24: a few bits a run, by timing creations; docs/redteam.md)."""
        got = self._memory_stat(("total_dirty", "file_dirty"), ("total_writeback", "file_writeback"))
        return (got[0] + got[1]) // 4096 if got else None

    def _memory_stat(self, *keys: tuple[str, str]) -> list[int] | None:
        """memory.stat's values of KEYS, each (v1's hierarchical name, v2's name), from the first
        cgroup that has them all; None without a memory cgroup."""
        for path in self.paths:
            fields = _fields(path / "memory.stat")
            values = [fields.get(v1, fields.get(v2)) for v1, v2 in keys]
            if all(v is not None and v.isdigit() for v in values):
                return [int(v) for v in values]
        return None

    def enter(self) -> None:
        """Called in the child before exec: it and all its descendants join the cgroups."""
        for path in self.paths:
            with open(path / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))

    def remove(self, evict: bool = False) -> None:
        """Kill what is left in the cgroups and remove them; with EVICT, first drop the pages
        charged to them (`evict_charged_pages`)."""
        for path in self.paths:
            pending = evict
            for _ in range(100):
                try:
                    for pid in _read(path / "cgroup.procs").split():
                        os.kill(int(pid), signal.SIGKILL)
                    if pending:
                        if _read(path / "cgroup.procs").strip():
                            raise OSError("processes left")
                        pending = False  # once: the kernel bounds its own retries
                        evict_charged_pages(path)
                    path.rmdir()
                    break
                except (OSError, ValueError):
                    time.sleep(0.05)


def evict_charged_pages(path: Path) -> None:
    """Reclaim every page charged to the (empty) memory cgroup at PATH, file pages included: a
    page is charged to the cgroup that brought it into the page cache, so what leaves is what its
    processes brought in, and the host's page cache is as they found it. Otherwise the pages a
    worker touched stay cached when it is gone, and a later worker that times its page faults
    reads them as bits (red team 10: 16 bits between two KernelBench evaluations in a few ms).
    v1: memory.force_empty; v2: memory.reclaim of what the cgroup holds. Nothing elsewhere."""
    if (path / "memory.force_empty").exists():
        knob, amount = path / "memory.force_empty", "0"
    elif (path / "memory.reclaim").exists():
        knob, amount = path / "memory.reclaim", _read(path / "memory.current").strip()
        if not amount.isdigit() or int(amount) == 0:
            return
    else:
        return
    try:
        knob.write_text(amount)
    except OSError:  # EBUSY / EAGAIN: some of it could not be reclaimed (the kernel gave up)
        pass


STALE_S = 600.0  # an empty kopt cgroup this old was left by a kopt that was killed (SIGKILL)
_swept: set[Path] = set()


def _sweep_once(base: Path) -> None:
    """Remove, once per process and folder, the empty `kopt-*` cgroups under BASE older than
    STALE_S: a kopt killed outright never removes its workers' (a test suite's killed runs
    left ~60 a day here). A live one is never empty for long: its worker joins at once."""
    if base in _swept:
        return
    _swept.add(base)
    try:
        entries = [p for p in base.iterdir() if p.name.startswith("kopt-")]
    except OSError:
        return
    now = time.time()
    for path in entries:
        try:
            if now - path.stat().st_mtime > STALE_S and not _read(path / "cgroup.procs").strip():
                path.rmdir()
        except OSError:
            continue


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


def _fields(path: Path) -> dict[str, str]:
    """A cgroup file of `key value` lines (memory.stat, memory.events) as a dict ({} if unreadable)."""
    return dict(line.split()[:2] for line in _read(path).splitlines() if len(line.split()) >= 2)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
