"""rt10: one KernelBench evaluation leaves state in the host's page cache that a later one reads.

Attack: evaluation A's candidate maps a read-only host file every worker sees (a large file
under /usr), madvise(MADV_RANDOM) so a fault reads only its own page, and touches the pages
whose bit is 1 in a secret. Evaluation B's candidate maps the same file, faults the first page
of each probed page's 16-page window -- the kernel's fault-around maps every *cached* page of
the window without reading any -- and reads the probed page's "present" bit from
/proc/self/pagemap. It raises with what it saw, so the bits come back in B's `reason`.
Before: B's reason was "RuntimeError: seen 10110010" for A's secret 10110010 (jailed workers,
full sandbox): a cross-evaluation channel (architecture §4: "state for a later evaluation: the
fresh build cache above" -- nothing else should survive), usable to tell a first evaluation
from a re-measurement or to pass anything else forward.
Root cause: the jail's seccomp filter refuses mincore/fadvise/readahead/cachestat/preadv2
NOWAIT, but KernelBench workers can still read /proc/self/pagemap (and RSS of a file mapping
via getrusage, /proc/self/smaps, statm); fault-around turns that into a residency test. The
program runner's `run_confinement` (Landlock hiding /proc, getrusage refused) is not applied
to KernelBench workers.
Fix: apply the program runner's confinement to the candidate's KernelBench worker as well
(Landlock or a bind over /proc/self/{pagemap,smaps,smaps_rollup,statm}, getrusage refused by
seccomp), or add mmap of host files with MADV_RANDOM/fault-around probing to what the jail
refuses; kopt itself needs none of those files in the worker once setup is done.
"""
from __future__ import annotations

import ctypes
import os
import re
import secrets
from pathlib import Path

import pytest

from kopt.sandboxes.evaluator import EvalConfig, evaluate

TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "relu.py"
PAGE, WINDOW, BITS = 4096, 16, 16

COMMON = '''
import ctypes, os, struct
import torch
PATH = {path!r}
PAGES = {pages!r}
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def _map():
    fd = os.open(PATH, os.O_RDONLY)
    size = os.fstat(fd).st_size
    a = _libc.mmap(None, size, 1, 1, fd, 0)
    _libc.madvise(a, size, 1)  # MADV_RANDOM: a fault reads its own page only
    return a


def _touch(a, page):
    return ctypes.c_ubyte.from_address(a + page * 4096).value


def _present(a, page):
    with open("/proc/self/pagemap", "rb") as f:
        f.seek((a // 4096 + page) * 8)
        return struct.unpack("<Q", f.read(8))[0] >> 63 & 1
'''
WRITER = COMMON + '''
SECRET = {secret!r}


class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        a = _map()
        for p, bit in zip(PAGES, SECRET):
            if bit == "1":
                _touch(a, p)

    def forward(self, x):
        return torch.relu(x)
'''
READER = COMMON + '''

class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        a = _map()
        bits = ""
        for p in PAGES:
            _touch(a, p - p % 16)  # fault-around maps the cached pages of p's window, reads none
            bits += str(_present(a, p))
        raise RuntimeError("seen " + bits)

    def forward(self, x):
        return torch.relu(x)
'''


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


def _host_file() -> tuple[str, list[int]] | None:
    """A large read-only file under /usr (which every jailed worker sees) with enough uncached windows."""
    for root in ("/usr/lib", "/usr/share", "/usr"):
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    if os.path.islink(path) or os.path.getsize(path) < 16 << 20:
                        continue
                    windows = _uncached_windows(path)
                except OSError:
                    continue
                if len(windows) >= 4 * BITS:
                    return path, windows
    return None


def test_page_cache_bits_do_not_reach_a_later_evaluation(tmp_path: Path) -> None:
    found = _host_file()
    if found is None:
        pytest.skip("no large uncached file under /usr on this host")
    path, windows = found
    rng = secrets.SystemRandom()
    pages = [w * WINDOW + 5 for w in sorted(rng.sample(windows, BITS))]
    secret = "".join(rng.choice("01") for _ in range(BITS - 2)) + "10"
    writer, reader = tmp_path / "writer.py", tmp_path / "reader.py"
    writer.write_text(WRITER.format(path=path, pages=pages, secret=secret))
    reader.write_text(READER.format(path=path, pages=pages))
    cfg = EvalConfig(max_timing_s=2, rounds=3, call_timeout_s=30, setup_timeout_s=60, confirm=False, quality_seeds=2)
    first = evaluate(TASK, writer, cfg)
    assert first["compiled"], first
    second = evaluate(TASK, reader, cfg)
    seen = re.search(r"seen ([01]+)", second.get("reason") or "")
    assert seen is None or seen.group(1) != secret, (secret, second.get("reason"))
