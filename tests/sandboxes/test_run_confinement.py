"""A program run cannot read which pages of a host file are cached (sandboxes/run_confinement.py).

Each test builds a real program in the real program sandbox (ProgramRunner) and asks it what
it can open and call: /proc/self/pagemap, the cgroup and NUMA-node counters, getrusage and a
wait4 that returns the child's rusage must fail in a plain run, while what an honest
stdin/stdout program needs (libraries, /sys/devices/system/cpu, a plain wait) still works.
A counted run (valgrind, which needs /proc) is not confined and still counts.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from kopt.sandboxes.program_runner import build_runner, valgrind_path
from kopt.sandboxes.run_confinement import Confinement

pytestmark = [pytest.mark.skipif(not shutil.which("gcc"), reason="gcc needed"),
              pytest.mark.skipif(not Confinement().available, reason="no Landlock on this kernel: "
                                                                       "checks.run_confinement says off")]

PROBE = r"""#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
static int opens(const char *path) { int fd = open(path, O_RDONLY); if (fd >= 0) close(fd); return fd >= 0; }
int main(void) {
    struct rusage u;
    int st, rusage_ok = getrusage(RUSAGE_SELF, &u) == 0;
    pid_t a = fork(); if (a == 0) _exit(0);
    int wait4_rusage_ok = wait4(a, &st, 0, &u) == a;
    pid_t b = fork(); if (b == 0) _exit(7);
    int plain_wait_ok = waitpid(b, &st, 0) == b && WEXITSTATUS(st) == 7;
    printf("pagemap=%d cgroup=%d node=%d cpu=%d libc=%d getrusage=%d wait4_rusage=%d plain_wait=%d\n",
           opens("/proc/self/pagemap"),
           opens("/sys/fs/cgroup/cgroup.procs") | opens("/sys/fs/cgroup/memory/cgroup.procs"),
           opens("/sys/devices/system/node/online"), opens("/sys/devices/system/cpu/online"),
           opens("/etc/ld.so.cache"), rusage_ok, wait4_rusage_ok, plain_wait_ok);
    return 0;
}
"""


def _probe(**run) -> tuple[dict[str, int], object]:
    runner, errors = build_runner("program", PROBE, "c", ["-O2"])
    with runner:
        assert not errors, errors
        r = runner.run(b"", 30, **run)
    assert r.rc == 0, r.failure()
    return {k: int(v) for k, v in (f.split("=") for f in r.stdout.decode().split())}, r


def test_a_run_sees_no_page_cache_reader_but_has_what_a_program_needs():
    seen, r = _probe()
    assert r.confined
    assert seen == {"pagemap": 0, "cgroup": 0, "node": 0, "cpu": 1, "libc": 1, "getrusage": 0,
                    "wait4_rusage": 0, "plain_wait": 1}, seen


@pytest.mark.skipif(not valgrind_path(), reason="valgrind needed")
def test_a_counted_run_is_not_confined_and_still_counts():
    seen, r = _probe(count=True)
    assert not r.confined and r.instructions and r.instructions > 0
    assert seen["pagemap"] == 1 and seen["getrusage"] == 1


def test_a_python_program_runs_confined():
    source = "import os, subprocess\nprint(os.cpu_count() > 0, subprocess.run(['true']).returncode, sum(range(10)))\n"
    runner, errors = build_runner("program", source, "python", [])
    with runner:
        assert not errors, errors
        r = runner.run(b"", 30)
    assert r.rc == 0 and r.confined, r.failure()
    assert r.stdout.decode().split() == ["True", "0", "45"]


def test_a_confined_kernelbench_worker_keeps_no_ruleset_fd_open():
    """confine_reads (the KernelBench worker's, before the candidate loads) applies the ruleset
    and closes its fd: the candidate would otherwise find it open (harmless, but a leak)."""
    probe = ("import os\n"
             "def open_fds():\n"
             "    out = set()\n"
             "    for fd in range(1024):\n"
             "        try:\n"
             "            os.fstat(fd)\n"
             "            out.add(fd)\n"
             "        except OSError:\n"
             "            pass\n"
             "    return out\n"
             "from kopt.sandboxes.harness_support import confine_reads\n"
             "before = open_fds()\n"
             "confine_reads()\n"
             "print(sorted(open_fds() - before))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "KOPT_CONFINE_READS": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"fds left open by confine_reads: {out.stdout.strip()}"
