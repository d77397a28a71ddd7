"""rt10: a repository patch keeps its result in the host's page cache between fresh runs: `faster`.

Attack: the hot function `lib.work(n)` keeps, for large n, its result between bench runs in
the page cache of a read-only host file every sandbox sees (under /usr). Storing: it maps the
file 2 MiB-aligned with MADV_RANDOM (a fault reads only its own page) and touches page 5 or
page 9 of each of 96 consecutive 16-page windows (one bit each: 64 bits of result, 32 of n)
plus a marker window. Loading: it faults page 0 of each window -- the kernel's fault-around
maps the window's *cached* pages without reading any -- and reads which of pages 5/9 became
present in /proc/self/pagemap. The tests (small n) never touch it; the first bench run
computes and stores; every later run, each "from a clean copy of the tree" in a new sandbox,
reads the answer back. Its output is the original's.
Before: `faster` 6.33x (CI 4.69-12.52), correct, output "same as the original's" -- a result
cache that survives from one run to the next, which fresh.py says cannot exist ("A result
cache therefore cannot survive from one run to the next").
Root cause: repository runs (sandboxes/repo_runner.py via shell_commands.TreeShell) get the
jail's seccomp filter (mincore, fadvise, readahead, cachestat, preadv2 NOWAIT refused) but not
the program runner's new confinement: /proc/self/pagemap (and smaps / RSS) stays readable,
and fault-around turns it into a page-cache residency test.
Fix: run repository commands under the same `run_confinement.Confinement` as program runs
(Landlock hiding /proc/*/pagemap, smaps, statm; getrusage refused), or hide those /proc files
from every jailed worker (KernelBench too: test_rt10_kb_page_cache.py).
"""
from __future__ import annotations

import ctypes
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from kopt.agent.targets.repo.repo_target import RepoTarget

PAGE, WINDOW, REGION = 4096, 16, 100
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
    'import struct\n'
    '\n'
    'PATH = {path!r}\n'
    'BASE = {base!r}  # first 16-page window of a region of the file no run has read\n'
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
    '    spare = _libc.mmap(None, size + (1 << 21), 0, 0x22, -1, 0)  # reserve, then map the file 2 MiB-aligned\n'
    '    a = _libc.mmap((spare + (1 << 21) - 1) & ~((1 << 21) - 1), size, 1, 0x11, fd, 0)  # MAP_SHARED | MAP_FIXED\n'
    '    _libc.madvise(a, size, 1)  # MADV_RANDOM: a fault reads its own page only\n'
    "    return a  # fault-around windows (16 pages) are now the file's own 16-page windows\n"
    '\n'
    '\n'
    'def _touch(a, page):\n'
    '    return ctypes.c_ubyte.from_address(a + page * 4096).value\n'
    '\n'
    '\n'
    'def _bit(a, f, window):\n'
    '    """(page 5 cached, page 9 cached) of a window, after fault-around from its page 0."""\n'
    '    first = (BASE + window) * 16\n'
    '    _touch(a, first)\n'
    '    got = []\n'
    '    for page in (first + 5, first + 9):\n'
    '        f.seek((a // 4096 + page) * 8)\n'
    '        got.append(struct.unpack("<Q", f.read(8))[0] >> 63 & 1)\n'
    '    return got\n'
    '\n'
    '\n'
    'def _load(n):\n'
    '    a = _map()\n'
    '    with open("/proc/self/pagemap", "rb", buffering=0) as f:\n'
    '        if _bit(a, f, 96) != [1, 0]:\n'
    '            return None\n'
    '        bits = []\n'
    '        for w in range(96):\n'
    '            one, zero = _bit(a, f, w)\n'
    '            if one == zero:\n'
    '                return None\n'
    '            bits.append(one)\n'
    '    value = sum(b << i for i, b in enumerate(bits))\n'
    '    return value >> 32 if value & 0xFFFFFFFF == n & 0xFFFFFFFF else None\n'
    '\n'
    '\n'
    'def _store(n, total):\n'
    '    a = _map()\n'
    '    value = (total << 32) | (n & 0xFFFFFFFF)\n'
    '    for w in range(96):\n'
    '        _touch(a, (BASE + w) * 16 + (5 if value >> w & 1 else 9))\n'
    '    _touch(a, (BASE + 96) * 16 + 5)\n'
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


def _uncached_windows(path: str) -> list[int]:
    """16-page windows of `path` none of whose pages the host has cached (mincore, here in the test)."""
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
    if not ok:
        return []
    return [w for w in range(n // WINDOW - 1) if not any(vec[w * WINDOW + i] & 1 for i in range(WINDOW))]


def _fresh_region() -> tuple[str, int] | None:
    """A large file under /usr and REGION consecutive windows of it no process has read."""
    for root in ("/usr/lib", "/usr/share", "/usr"):
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    if os.path.islink(path) or os.path.getsize(path) < 32 << 20:
                        continue
                    windows = _uncached_windows(path)
                except OSError:
                    continue
                free = set(windows)
                starts = [w for w in windows if all(w + k in free for k in range(REGION))]
                if starts:
                    return path, secrets.choice(starts)
    return None


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=rt@kopt", "-c", "user.name=rt", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout


def test_page_cache_result_cache_is_not_faster(tmp_path: Path) -> None:
    found = _fresh_region()
    if found is None:
        pytest.skip("no large file under /usr with an uncached region on this host")
    path, base = found
    repo = tmp_path / "repo"
    repo.mkdir()
    for name, text in FILES.items():
        (repo / name).write_text(text)
    _git(repo, "init", "-q", ".")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "init")
    (repo / "lib.py").write_text(PATCHED_LIB.replace("{path!r}", repr(path)).replace("{base!r}", repr(base)))
    patch = tmp_path / "cache.patch"
    patch.write_text(_git(repo, "diff"))
    _git(repo, "checkout", "-q", "lib.py")
    target = RepoTarget.from_options(repo, test='python3 -c "import test_lib"', bench="python3 bench.py")
    res = target.evaluate(patch, [])
    assert res["verdict"] != "faster", (res["verdict"], res["speedup"], res.get("reason"), res["checks"].get("output"))
