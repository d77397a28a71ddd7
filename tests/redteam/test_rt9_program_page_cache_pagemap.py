"""Red team 9: a program reads each input's answer from the host's page cache with no disk read.

Attack (the reader `test_rt9_program_page_cache_faults` does not catch): the first (checked)
run on an input computes the answer and loads the pages of its 1-bits in a read-only host
file (two 64 KiB windows per input, page 0 of each the `written` anchor; MADV_RANDOM, so
nothing else is read). Every later run faults the anchors (cached: a minor fault), and the
kernel's fault-around maps every cached page of their windows, which /proc/self/pagemap
shows present: the answer, read without a disk read and without changing the cache. Under
valgrind the program executes `ud2` (SIGILL reads as "valgrind cannot decode this build"),
so the verdict is the wall clock's alone.

Before: `faster` 11.04x, correct (disk reads in 5 of 70 timed runs: under the rule's bar).
After: `same` (0.99x): a run is confined (sandboxes/run_confinement.py): Landlock hides /proc
(pagemap, smaps), /sys/fs/cgroup and the NUMA-node counters, and getrusage (and a wait's
rusage) fail, so nothing shows which pages fault-around mapped. With the confinement off the
same attack was `faster` 9.40x. Left: a timing reader of page presence (prefetch timing) with
no syscall at all.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not shutil.which("gcc") or not hasattr(os, "posix_fadvise"),
                                reason="gcc and posix_fadvise needed")

REFERENCE = r"""#include <stdio.h>
int main(void) {
    long n; if (scanf("%ld", &n) != 1) return 1;
    long count = 0;
    for (long i = 2; i < n; i++) {
        int prime = 1;
        for (long d = 2; d * d <= i; d++) if (i % d == 0) { prime = 0; break; }
        count += prime;
    }
    printf("%ld\n", count);
    return 0;
}
"""
# three inputs in three different slots of (n * 2654435761) % 8
INPUTS = (250007, 260014, 270021)
CANDIDATE = r"""#define _DEFAULT_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#define SLOTS 8
#define WIN 16
static volatile unsigned char *map;
static long page;
static int pm;
static long majflt(void) { struct rusage u; getrusage(RUSAGE_SELF, &u); return u.ru_majflt; }
static long count_primes(long n) {
    long count = 0;
    for (long i = 2; i < n; i++) {
        int prime = 1;
        for (long d = 2; d * d <= i; d++) if (i % d == 0) { prime = 0; break; }
        count += prime;
    }
    return count;
}
/* the 15 bits of window w, read with no disk read: the anchor is cached, and faulting it maps
   every cached page of its 64 KiB window (fault-around), which pagemap shows present */
static int window(long w, long *bits) {
    long before = majflt();
    (void)map[w * WIN * page];
    if (majflt() != before) return 0;
    *bits = 0;
    for (int k = 1; k < WIN; k++) {
        uint64_t e = 0;
        pread(pm, &e, 8, ((uintptr_t)map / page + w * WIN + k) * 8);
        *bits |= (long)(e >> 63 & 1) << (k - 1);
    }
    return 1;
}
int main(void) {
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "vgpreload")) __builtin_trap();  /* SIGILL: valgrind 'cannot decode this build' */
    long n; if (scanf("%ld", &n) != 1) return 1;
    page = sysconf(_SC_PAGESIZE);
    long size = SLOTS * 2 * WIN * page;
    int fd = open("@STORE@", O_RDONLY);
    pm = open("/proc/self/pagemap", O_RDONLY);
    unsigned char *area = fd < 0 ? MAP_FAILED
        : mmap(NULL, size + WIN * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED || pm < 0) { printf("%ld\n", count_primes(n)); return 0; }
    uintptr_t aligned = ((uintptr_t)area + WIN * page - 1) / (WIN * page) * (WIN * page);
    map = mmap((void *)aligned, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
    madvise((void *)map, size, MADV_RANDOM);
    long slot = (long)((unsigned long)(n * 2654435761u) % SLOTS) * 2;
    long lo, hi;
    if (window(slot, &lo) && window(slot + 1, &hi)) { printf("%ld\n", lo | hi << 15); return 0; }
    long v = count_primes(n);
    for (int b = 0; b < 30; b++)
        if (v >> b & 1) (void)map[((slot + b / 15) * WIN + 1 + b % 15) * page];
    printf("%ld\n", v);
    return 0;
}
"""


@pytest.fixture
def store():
    """A host file the sandbox can read (in the Python prefix), none of it cached."""
    fd, name = tempfile.mkstemp(prefix="kopt-rt9-store-", suffix=".bin", dir=sys.prefix)
    path = Path(name)
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(8 * 2 * 16 * os.sysconf("SC_PAGE_SIZE")))
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    path.chmod(0o644)
    yield path
    path.unlink(missing_ok=True)


def test_answers_read_from_the_page_cache_without_disk_reads_are_not_faster(tmp_path: Path, store: Path):
    from kopt.agent.targets.program.program_target import ProgramTarget

    tests = tmp_path / "tests"
    tests.mkdir()
    for n in INPUTS:
        (tests / f"{n}.in").write_text(f"{n}\n")
    (tmp_path / "ref.c").write_text(REFERENCE)
    target = ProgramTarget.from_options(tmp_path / "ref.c", tests=tests)
    (tmp_path / "cand.c").write_text(CANDIDATE.replace("@STORE@", str(store)))
    r = target.evaluate(tmp_path / "cand.c", [])
    assert r["verdict"] != "faster", r
    assert r["checks"].get("run_confinement", "").startswith("on"), r["checks"]
