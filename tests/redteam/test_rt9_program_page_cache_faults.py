"""Red team 9: a program keeps each input's answer in the host's page cache, read by major faults.

Attack: the seccomp filter refuses mincore, cachestat, fadvise, readahead and preadv2's
RWF_NOWAIT (red team 8), leaving page-cache state "write-once and read by timing only". But a
page of a read-only host file touched through a mapping (MADV_RANDOM: no read-around) tells
exactly whether it was cached: getrusage's ru_majflt moves when it was not. Write-once is
enough with generations: the first (checked) run on an input computes the answer and loads,
in each of 18 generations, a `written` page and the pages of the answer's 1-bits; every later
run spends the first generation whose `spent` page faults, and reads the bits back.

Before: `faster` 9.97x and correct (wall 6.9x; 136 thousand instructions for 687 million):
every counted and timed run after the first was a lookup.
After: the worker reports each run's major faults and blocks read (its children's rusage);
a candidate whose timed runs mostly read from disk, where the reference's did not, is `rejected`
(a reader that times its touches instead still reads from disk on every run). Since round 10
a run is also confined (sandboxes/run_confinement.py): getrusage fails, so this reader cannot
tell and computes every answer (`same`). Without the confinement, the disk-read rule's test
is `test_most_timed_runs_reading_from_disk_are_rejected`. An honest copy still reads `same`.
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
SLOTS, GENS, BITS = 8, 18, 20
CANDIDATE = r"""#define _DEFAULT_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#define SLOTS @SLOTS@
#define GENS @GENS@
#define BITS @BITS@
#define PER_GEN (2 + BITS)
static volatile unsigned char *map;
static long page;
static long majflt(void) { struct rusage u; getrusage(RUSAGE_SELF, &u); return u.ru_majflt; }
static int was_cached(long k) { long before = majflt(); (void)map[k * page]; return majflt() == before; }
static long count_primes(long n) {
    long count = 0;
    for (long i = 2; i < n; i++) {
        int prime = 1;
        for (long d = 2; d * d <= i; d++) if (i % d == 0) { prime = 0; break; }
        count += prime;
    }
    return count;
}
int main(void) {
    long n; if (scanf("%ld", &n) != 1) return 1;
    int fd = open("@STORE@", O_RDONLY);
    long size = (long)SLOTS * GENS * PER_GEN;
    page = sysconf(_SC_PAGESIZE);
    map = fd < 0 ? MAP_FAILED : mmap(NULL, size * page, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) { printf("%ld\n", count_primes(n)); return 0; }
    madvise((void *)map, size * page, MADV_RANDOM);
    long slot = (long)((unsigned long)(n * 2654435761u) % SLOTS) * GENS * PER_GEN;
    for (int g = 0; g < GENS; g++) {
        long at = slot + g * PER_GEN;
        if (was_cached(at)) continue;          /* spent by an earlier run */
        if (was_cached(at + 1)) {              /* written: read the answer */
            long v = 0;
            for (int b = 0; b < BITS; b++) v |= (long)was_cached(at + 2 + b) << b;
            printf("%ld\n", v);
            return 0;
        }
        long v = count_primes(n);              /* first run: compute and store */
        for (int h = g + 1; h < GENS; h++) {
            long a = slot + h * PER_GEN;
            (void)map[(a + 1) * page];
            for (int b = 0; b < BITS; b++) if (v >> b & 1) (void)map[(a + 2 + b) * page];
        }
        printf("%ld\n", v);
        return 0;
    }
    printf("%ld\n", count_primes(n));
    return 0;
}
"""


@pytest.fixture
def store():
    """A host file the sandbox can read (in the Python prefix, which every run is shown, like
    any large library there), none of it cached."""
    fd, name = tempfile.mkstemp(prefix="kopt-rt9-store-", suffix=".bin", dir=sys.prefix)
    path = Path(name)
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(SLOTS * GENS * (2 + BITS) * os.sysconf("SC_PAGE_SIZE")))
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    path.chmod(0o644)
    yield path
    path.unlink(missing_ok=True)


def _target(tmp_path: Path):
    from kopt.agent.targets.program.program_target import ProgramTarget

    tests = tmp_path / "tests"
    tests.mkdir()
    for n in INPUTS:
        (tests / f"{n}.in").write_text(f"{n}\n")
    (tmp_path / "ref.c").write_text(REFERENCE)
    return ProgramTarget.from_options(tmp_path / "ref.c", tests=tests)


def test_answers_kept_in_the_page_cache_are_rejected(tmp_path: Path, store: Path):
    target = _target(tmp_path)
    source = CANDIDATE.replace("@STORE@", str(store))
    for name, value in (("SLOTS", SLOTS), ("GENS", GENS), ("BITS", BITS)):
        source = source.replace(f"@{name}@", str(value))
    (tmp_path / "cand.c").write_text(source)
    r = target.evaluate(tmp_path / "cand.c", [])
    assert r["verdict"] != "faster", r
    confined = r["checks"].get("run_confinement", "").startswith("on")
    assert confined or (r["verdict"] == "rejected" and "disk" in r["reason"]), r


def test_most_timed_runs_reading_from_disk_are_rejected():
    """The rule alone, on the counts a run reports (a reader that cannot be confined: timing)."""
    from kopt.agent.targets.program.program_eval import _check_disk_reads, _Verdict

    checks: dict = {}
    with pytest.raises(_Verdict, match="read from disk in 56 of its 70 timed runs"):
        _check_disk_reads({"new": 56, "ref": 0, "runs": 70}, checks)
    assert checks["disk_read_runs"] == {"new": 56, "ref": 0, "of": 70}
    _check_disk_reads({"new": 5, "ref": 0, "runs": 70}, {})  # a few stray reads: not state
    _check_disk_reads({"new": 40, "ref": 30, "runs": 70}, {})  # the reference reads as much: the host


def test_an_honest_copy_reads_no_disk(tmp_path: Path):
    target = _target(tmp_path)
    (tmp_path / "copy.c").write_text(REFERENCE + "\n")
    r = target.evaluate(tmp_path / "copy.c", [])
    assert r["verdict"] == "same" and r["checks"]["disk_read_runs"]["new"] <= 1, r
