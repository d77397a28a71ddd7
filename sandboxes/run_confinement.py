"""What a program run may not look at: which of a file's pages the host has cached.

The page cache outlives every run. A program that reads page P of a read-only host file on
its checked run leaves P cached; on a later run it maps the file, faults one page it knows is
cached, and the kernel's fault-around maps every cached neighbour, which /proc/self/pagemap
(or the mapping's RSS in getrusage's ru_maxrss, /proc/self/smaps, the cgroup's memory.stat,
move_pages' status) then shows: each input's answer, read back with no disk read (red team 9:
`faster` 11.04x, correct). The jail's seccomp filter already refuses the calls that ask the
cache directly (mincore, fadvise, readahead, cachestat, preadv2 RWF_NOWAIT, move_pages).

So a program run (the candidate's and the reference's alike) starts under `Confinement`:
- Landlock: reading and executing are allowed everywhere but /proc (bar /proc/cpuinfo) and
  /sys (bar the CPU topology): the cgroup, NUMA-node and block-device counters are there;
- a seccomp filter on top of the jail's: getrusage and perf_event_open fail (EPERM), and so
  do wait4 and waitid when they ask for the child's rusage.
A program that needs neither -- a stdin/stdout program does not -- runs as before. Runs under
valgrind are not confined (valgrind reads /proc/self/maps); what a counted run learns only
lowers its instruction count, which the wall clock then contradicts.

Built in the worker before any fork (`Confinement()`), applied in the forked child just before
exec (`apply`): only syscalls there, no allocation. Where the kernel has no Landlock,
`available` is False and the evaluation says so (checks.run_confinement).
"""
from __future__ import annotations

import os
import platform
import resource

from kopt.sandboxes import jailhelp, landlock

READS = landlock.EXECUTE | landlock.READ_FILE | landlock.READ_DIR  # only reads are Landlock's to judge
# all of /sys: the cgroup and NUMA counters (nr_mapped, host-wide) and the block layer's
# (/sys/dev/block/*/stat counts the host disk's reads: a page-cache miss, 32 of 32 bits read
# back between two repository runs, red team 12)
HIDDEN = ("/proc", "/sys")
# what torch needs of them: the cpuinfo library's processor list (half-precision ops raised
# "Failed to initialize cpuinfo!" without it) and the CPU topology (core counts); neither
# tells anything about the page cache
READABLE_INSIDE = ("/proc/cpuinfo", "/sys/devices/system/cpu")
# (getrusage, wait4, waitid): a child's rusage (its ru_maxrss) comes back through the waits too
RUSAGE_CALLS = {"x86_64": (98, 61, 247), "aarch64": (165, 260, 95)}


def _rusage_filter() -> bytes | None:
    """BPF: getrusage and perf_event_open fail with EPERM, and so do wait4 and waitid when asked
    for the child's rusage (a plain wait passes NULL); every other call is left to the jail's filter."""
    machine = platform.machine()
    if machine not in RUSAGE_CALLS or machine not in jailhelp.ARCHES:
        return None
    getrusage, wait4, waitid = RUSAGE_CALLS[machine]
    ins, ld, jeq, ret = jailhelp._ins, jailhelp.LD_W_ABS, jailhelp.JEQ_K, jailhelp.RET_K
    allow, eperm = jailhelp.RET_ALLOW, jailhelp.RET_EPERM
    perf = jailhelp.ARCHES[machine][1]["perf_event_open"]  # its own fault counts, as ru_majflt (red team 11)
    prog = [ins(ld, 4), ins(jeq, jailhelp.ARCHES[machine][0], 1, 0), ins(ret, eperm),
            ins(ld, 0), ins(jeq, getrusage, 0, 1), ins(ret, eperm), ins(jeq, perf, 0, 1), ins(ret, eperm)]
    for nr, arg in ((wait4, 3), (waitid, 4)):
        low = 16 + 8 * arg  # seccomp_data.args[arg]: low half, then high half
        prog += [ins(jeq, nr, 0, 7), ins(ld, low), ins(jeq, 0, 1, 0), ins(ret, eperm),
                 ins(ld, low + 4), ins(jeq, 0, 0, 1), ins(ret, allow), ins(ret, eperm)]
    prog.append(ins(ret, allow))
    return b"".join(prog)


class Confinement:
    """A Landlock ruleset (everything readable but HIDDEN) and a seccomp filter, prepared in the
    parent so that the forked child only has to make three calls."""

    def __init__(self, hidden: tuple[str, ...] = HIDDEN):
        inside = [p for p in READABLE_INSIDE if any(p.startswith(h + "/") for h in hidden)]
        self.ruleset_fd = landlock.ruleset(READS, landlock.allowed_beside(list(hidden)) + inside)
        if self.ruleset_fd >= 0:
            os.set_inheritable(self.ruleset_fd, False)
        prog = _rusage_filter()
        self._filter = jailhelp.Filter(prog) if prog else None

    @property
    def available(self) -> bool:
        return self.ruleset_fd >= 0

    def apply(self) -> None:
        """In the forked child, before exec: no new privileges, the Landlock domain, the filter.
        A failure raises (the run then fails: a program must not run unconfined unnoticed)."""
        if not self.available:
            return
        landlock.restrict_self(self.ruleset_fd)
        if self._filter is not None:
            self._filter.load()

    def close(self) -> None:
        """Close the ruleset fd: once applied in a process that goes on (the KernelBench worker),
        the candidate should not find it open (harmless -- rules can only be added -- but a leak)."""
        if self.ruleset_fd >= 0:
            os.close(self.ruleset_fd)
            self.ruleset_fd = -1


def children_disk_reads() -> int:
    """Major page faults and blocks read of this process's waited-for children so far: what the
    confinement cannot stop a run doing, reading a page the host had not cached, counted from
    outside it (a run's share, the difference around it; program_eval and repo_bench judge it)."""
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_majflt + u.ru_inblock
