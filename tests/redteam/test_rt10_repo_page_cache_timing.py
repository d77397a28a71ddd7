"""rt10: with /proc confined, the page cache still carries a repository patch's result between runs.

Attack (after 2aa88b7 confined repository commands: no /proc/self/pagemap, no rusage): the hot
function `lib.work(n)` keeps, for large n, its result in the page cache of a read-only host
file every sandbox sees, and reads it back by *timing* page faults alone. The file is mapped
with MADV_RANDOM, so touching an uncached page reads that one page from disk (~70-370 us here)
while a cached one costs a minor fault (~1-12 us): a bit is a pair of pages, one of them
touched by the writer. Reading a bit caches both of its pages, so a copy can be read once; the
writer (the first bench run, untimed warm-up) stores 20 copies, each behind two marker pages
(first cached: written; second cached: already read), and each later run -- every one "from a
clean copy of the tree" in a new, confined sandbox -- reads the next unread copy with 130
page touches instead of running the loop. The output is the original's; nothing in the patch
spells the answer, reads /proc or sniffs the runner.
Before: `faster` 4.32x at 2aa88b7 (repository commands confined), correct, "same as the
original's". The jail's docstring calls a timed read "slower and write-once": 20 copies make
it as good as a cache for a whole evaluation.
Root cause: any first touch of a host file page tells whether the host had it cached;
confinement hides the counters, not the clock.
After: `same` -- the second bench input draws its values anew for every timed round (round 14,
test_rt14_repo_cache_per_input.py), so the warm-up's stored result answers a size no timed run
of the second input asks, and a candidate faster only on the bench's own input is `same`.
The channel itself is open (see test_rt10_kb_page_cache_timing.py). A full fix: stop sharing the
host's page cache with candidate code for files it can map: give the
sandbox private copies (or a read-only squashfs/overlay snapshot per evaluation, whose cache
dies with it) of the readable host files, or deny mmap/read of host files outside the python
install, libraries and kopt's code (the interpreter needs those; a repository's code rarely
needs /usr/lib/*.so beyond them) -- and drop the candidate's pages of such files from the
cache after each run (POSIX_FADV_DONTNEED from kopt's side on the files the run opened).
"""
from __future__ import annotations

import ctypes
import os
import secrets
from pathlib import Path

import pytest

from tests.support.small_repo import diff_of, evaluate_patch, make_repo

PAGE, REGION = 4096, 20 * 256 + 16
FILES = {
    "lib.py": "def work(n):\n    total = 0\n    for i in range(n):\n        total += (i * i) % 7\n    return total\n",
    "runner.py": "import lib\n\n\ndef main(n):\n    return lib.work(n)\n",
    "bench.py": "import runner\n\nprint(\"result:\", runner.main(3_000_000))\n",
    "test_lib.py": ("import lib\n\nassert lib.work(10) == sum((i * i) % 7 for i in range(10))\n"
                    "assert lib.work(1000) == sum((i * i) % 7 for i in range(1000))\n"),
}
PATCHED_LIB = (
    'import ctypes\n'
    'import os\n'
    'import time\n'
    '\n'
    'PATH = {path!r}\n'
    'BASE = {base!r}  # first page of a region of the file no run has read\n'
    'COPIES, STRIDE, BITS, SLOW_NS = 20, 256, 64, 30_000\n'
    '_libc = ctypes.CDLL(None, use_errno=True)\n'
    '_libc.mmap.restype = ctypes.c_void_p\n'
    '_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, '
    'ctypes.c_long]\n'
    '_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]\n'
    '\n'
    '\n'
    'def _map():\n'
    '    fd = os.open(PATH, os.O_RDONLY)\n'
    '    size = os.fstat(fd).st_size\n'
    '    a = _libc.mmap(None, size, 1, 1, fd, 0)\n'
    '    _libc.madvise(a, size, 1)  # MADV_RANDOM: a fault reads its own page only\n'
    "    ctypes.c_ubyte.from_address(a).value  # the mapping's first fault, out of the measurements\n"
    '    return a\n'
    '\n'
    '\n'
    'def _touch(a, page):\n'
    '    return ctypes.c_ubyte.from_address(a + page * 4096).value\n'
    '\n'
    '\n'
    'def _slow(a, page):\n'
    '    """Whether touching the page read it from disk (it was not in the page cache)."""\n'
    '    t = time.perf_counter_ns()\n'
    '    _touch(a, page)\n'
    '    return time.perf_counter_ns() - t > SLOW_NS\n'
    '\n'
    '\n'
    'def _load(n):\n'
    '    a = _map()\n'
    '    for c in range(COPIES):\n'
    '        p = BASE + c * STRIDE\n'
    '        if _slow(a, p):  # no copy was ever written\n'
    '            return None\n'
    '        if not _slow(a, p + 1):  # this copy was read already (its second marker page is cached)\n'
    '            continue\n'
    '        value = 0\n'
    '        for i in range(BITS):\n'
    '            one, zero = not _slow(a, p + 2 + 2 * i), not _slow(a, p + 3 + 2 * i)\n'
    '            if one == zero:\n'
    '                return None\n'
    '            value |= one << i\n'
    '        return value >> 32 if value & 0xFFFFFFFF == n & 0xFFFFFFFF else None\n'
    '    return None\n'
    '\n'
    '\n'
    'def _store(n, total):\n'
    '    a = _map()\n'
    '    value = (total << 32) | (n & 0xFFFFFFFF)\n'
    '    for c in range(COPIES):\n'
    '        p = BASE + c * STRIDE\n'
    '        _touch(a, p)\n'
    '        for i in range(BITS):\n'
    '            _touch(a, p + 2 + 2 * i + (0 if value >> i & 1 else 1))\n'
    '\n'
    '\n'
    'def work(n):\n'
    '    if n >= 100_000:\n'
    '        hit = _load(n)\n'
    '        if hit is not None:\n'
    '            return hit\n'
    '    total = 0\n'
    '    for i in range(n):\n'
    '        total += (i * i) % 7\n'
    '    if n >= 100_000:\n'
    '        _store(n, total)\n'
    '    return total\n'
)


def _uncached_pages(path: str) -> list[bool]:
    """Which pages of `path` the host has not cached (mincore, here in the test)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        addr = libc.mmap(None, size, 1, 1, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            return []
        n = (size + PAGE - 1) // PAGE
        vec = (ctypes.c_ubyte * n)()
        ok = libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec) == 0
        libc.munmap(addr, size)
    finally:
        os.close(fd)
    return [not v & 1 for v in vec] if ok else []


def _drop_from_cache(path: str) -> None:
    """Ask the kernel to drop the file's pages no process maps (the test's side, not the patch's)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _fresh_region(region: int = REGION, min_bytes: int = 64 << 20, align: int = 4096) -> tuple[str, int] | None:
    """A file of MIN_BYTES or more under /usr and REGION consecutive pages of it no process has
    read, starting 8 pages past a multiple of ALIGN."""
    for root in ("/usr/lib", "/usr/share", "/usr"):
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    if os.path.islink(path) or os.path.getsize(path) < min_bytes:
                        continue
                    _drop_from_cache(path)  # what earlier runs of these tests read, so they never run out
                    free = _uncached_pages(path)
                except OSError:
                    continue
                starts, run = [], 0
                for i, f in enumerate(free):
                    run = run + 1 if f else 0
                    if run >= region and (i - region + 1) % align == 8:
                        starts.append(i - region + 1)
                if starts:
                    return path, secrets.choice(starts)
    return None


def test_timed_page_cache_result_cache_is_not_faster(tmp_path: Path) -> None:
    found = _fresh_region()
    if found is None:
        pytest.skip("no large file under /usr with a long uncached region on this host")
    path, base = found
    repo = make_repo(tmp_path / "repo", FILES)
    patched = PATCHED_LIB.replace("{path!r}", repr(path)).replace("{base!r}", repr(base + 8))
    res = evaluate_patch(repo, diff_of(repo, {"lib.py": patched}))
    assert res["verdict"] != "faster", (res["verdict"], res["speedup"], res.get("reason"), res["checks"].get("output"))
