"""Timed runs that read from disk where the original's did not: the page cache used as a store.

Every input has run before the timed rounds (the checked runs, a repository's warm-up), so by
then honest code and what it reads are cached. A page of a read-only host file that was not
is a bit of state the page cache kept between runs: a candidate stored each input's answer in
which pages of a host library it had read, and read it back by timing faults (red team 9:
a program `faster` 9.97x, correct; for a repository the same store could hold partial results
a bench on another input only had to finish). The jail refuses the calls that ask the cache
without reading (mincore, cachestat, preadv2 RWF_NOWAIT), so a reader reads from disk: a major
fault, a block read or a page newly in the cache, counted from outside its processes (their
waited-for rusage, and for a repository run its memory cgroup, which counts a process nobody
waits for). An O_DIRECT read counts too: its time tells whether a cache below this kernel holds
the block (red team 22), so an honest O_DIRECT reader is rejected, and the reason says why.
"""
from __future__ import annotations


def store_problem(new_runs: int, ref_runs: int, runs: int) -> str | None:
    """Why a candidate with NEW_RUNS of its RUNS timed runs reading from disk (the original:
    REF_RUNS) is not believed, or None: most of them did, and more than twice the original's."""
    if new_runs > runs // 2 and new_runs > 2 * ref_runs + 1:
        return (f"read from disk in {new_runs} of its {runs} timed runs (the reference in {ref_runs}): pages "
                f"the host had not cached, read again on every measured run, are state kept between runs in "
                f"the page cache (reads that bypass it, O_DIRECT, count too: read through the page cache)")
    return None
