"""rt10: with the worker confined (no /proc), timed page faults still carry bits between evaluations.

Attack (after ad6fffe confined KernelBench CPU workers from their first line: /proc,
cgroup counters and getrusage unreadable): evaluation A's candidate maps a large read-only
host file under /usr with MADV_RANDOM and touches the pages whose bit is 1 in a secret.
Evaluation B's candidate maps the same file and *times* one touch of each page: an uncached
page is read from disk (~70-370 us on this machine), a cached one is a minor fault
(~1-12 us). It raises with what it read, so the bits come back in B's `reason`.
Before: B's reason carried A's secret exactly (see the assertion), every worker fully jailed
and confined. The jail's docstring calls this channel "slower and write-once"; it is neither
slow (16 bits in a few ms) nor hard to renew (a writer can leave many copies: see
test_rt10_repo_page_cache_timing.py, where it makes a repository patch `faster`).
Root cause: the host's page cache is shared with candidate code for every host file it can
map; confinement hides the counters, not the clock.
Fixed (session 17): a KernelBench worker's memory cgroup is emptied of its page cache when it
ends (`Limits.evict_at_exit`, `worker_limits.evict_charged_pages`: v1 memory.force_empty, v2
memory.reclaim). A page is charged to the cgroup that brought it into the cache, so the writer's
1-bits, pages it read in, leave with it; it cannot set a 0-bit (evict a page someone else
cached: MADV_PAGEOUT is refused, red team 23).
"""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import pytest

from kopt.sandboxes.evaluator import EvalConfig, evaluate
from kopt.sandboxes.page_residency import residency

TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "relu.py"
PAGE, BITS, SPACING = 4096, 16, 4

COMMON = '''
import ctypes, os, time
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
    ctypes.c_ubyte.from_address(a).value
    return a


def _touch_ns(a, page):
    t = time.perf_counter_ns()
    ctypes.c_ubyte.from_address(a + page * 4096).value
    return time.perf_counter_ns() - t
'''
WRITER = COMMON + '''
SECRET = {secret!r}


class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        a = _map()
        for p, bit in zip(PAGES, SECRET):
            if bit == "1":
                _touch_ns(a, p)

    def forward(self, x):
        return torch.relu(x)
'''
READER = COMMON + '''

class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        a = _map()
        bits = "".join("1" if _touch_ns(a, p) < 30_000 else "0" for p in PAGES)
        raise RuntimeError("seen " + bits)

    def forward(self, x):
        return torch.relu(x)
'''


def _uncached_pages(path: str) -> list[bool]:
    """For each page of PATH, whether the host has NOT cached it (kopt's own mincore reading)."""
    return [not cached for cached in residency(path)]


def _host_file() -> tuple[str, list[int]] | None:
    """A large read-only file under /usr and BITS uncached pages of it (with uncached neighbours)."""
    for root in ("/usr/lib", "/usr/share", "/usr"):
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    if os.path.islink(path) or os.path.getsize(path) < 16 << 20:
                        continue
                    free = _uncached_pages(path)
                except OSError:
                    continue
                spots = [i for i in range(64, len(free) - 64, 64) if all(free[i - 2:i + 3])]
                if len(spots) >= 4 * BITS:
                    return path, sorted(secrets.SystemRandom().sample(spots, BITS))
    return None


def test_timed_page_cache_bits_do_not_reach_a_later_evaluation(tmp_path: Path) -> None:
    found = _host_file()
    if found is None:
        pytest.skip("no large uncached file under /usr on this host")
    path, pages = found
    rng = secrets.SystemRandom()
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
