"""rt25: round 10's page-cache channel survives the eviction one level down (the VM's disk cache).

Attack (on session 17's fix, `Limits.evict_at_exit` / `worker_limits.evict_charged_pages`):
evaluation A's candidate is round 10's writer, unchanged in kind: it maps large read-only /usr
files with MADV_RANDOM and touches one page at each "site" of a 1-bit (K sites per bit, 1 MiB
apart, in many files). When A's worker ends, kopt empties its memory cgroup: the pages leave
this kernel's page cache, as the fix intends. But reading them went to the disk, and on this
host the disk is a file of the hypervisor's (a Firecracker guest, /dev/vda): the host's cache
now holds those blocks. Evaluation B's candidate faults each site and times it: a block the
host has not read lately costs milliseconds (2.5-20 ms measured here), one it read lately
~40-100 us. A bit is 0 when any of its K sites is slow (a 0-bit's sites were never touched,
so most stay cold), else 1. It raises with what it read, so the bits come back in B's `reason`.
Measured here (the writer's pages asserted gone from this kernel's cache before B ran): the
first two runs read A's 16 bits exactly (36 and 24 slow sites); later runs found the host's
cache warm over most of these files (0-19 slow sites: 0-bits read as 1), since every run
warms its sites and the host reads ahead around them: a write-once store per disk region,
renewed as the host evicts, not a closed one.
Honest outcome: B does not read A's secret.
Root cause: `worker_limits.evict_charged_pages` empties this kernel's page cache only; any
cache below it (hypervisor, disk controller) keeps which blocks a worker read.
Fix idea: none in the guest evicts the host's cache; make the lower state unreadable instead:
no clock fine enough for a worker (not possible for CPU code), or no host file a worker can
read that kopt does not keep warm (read every file the jail exposes once at kopt start, e.g.
`vmtouch`-like, so every block is "read lately"; or give workers a copy of the runtime on a
tmpfs / squashfs image held in memory, so a fault never reaches the disk).
The same store works with O_DIRECT reads on both sides (nothing is ever charged to the
worker's cgroup, so nothing is evicted); see rt22's O_DIRECT store.
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
BITS, K, STRIDE = 16, 16, 256  # sites per bit; STRIDE pages (1 MiB) between sites

COMMON = '''
import ctypes, mmap, os, time
import torch
SITES = {sites!r}
K = {k}


def _maps():
    out = {{}}
    for path in sorted({{p for p, _ in SITES}}):
        f = open(path, "rb")
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        m.madvise(mmap.MADV_RANDOM)  # a fault reads its own page only
        out[path] = (f, m)
    return out


def _touch_ns(maps, site):
    m = maps[site[0]][1]
    t = time.perf_counter_ns()
    m[site[1] * 4096]
    return time.perf_counter_ns() - t
'''
WRITER = COMMON + '''
SECRET = {secret!r}


class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        maps = _maps()
        for i, bit in enumerate(SECRET):
            if bit == "1":
                for site in SITES[i * K:(i + 1) * K]:
                    _touch_ns(maps, site)

    def forward(self, x):
        return torch.relu(x)
'''
READER = COMMON + '''

class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        maps = _maps()
        times = [_touch_ns(maps, site) for site in SITES]
        bits = "".join("0" if max(times[i * K:(i + 1) * K]) > 1_000_000 else "1" for i in range(len(times) // K))
        slow = sum(t > 1_000_000 for t in times)
        raise RuntimeError("seen " + bits + " slow " + str(slow))

    def forward(self, x):
        return torch.relu(x)
'''


def _sites(n: int) -> list[tuple[str, int]] | None:
    """N pages of large /usr files, STRIDE pages apart, that this kernel has not cached (nor
    their neighbours), in random order."""
    rng = secrets.SystemRandom()
    found: list[tuple[str, int]] = []
    for root in ("/usr/lib", "/usr/share", "/usr/local"):
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    if os.path.islink(path) or os.path.getsize(path) < 8 << 20:
                        continue
                    cached = residency(path)
                except OSError:
                    continue
                start = rng.randrange(STRIDE)
                spots = range(start + 64, len(cached) - 64, STRIDE)
                found += [(path, i) for i in spots if not any(cached[i - 8:i + 9])]
    if len(found) < n:
        return None
    return rng.sample(found, n)


@pytest.mark.xfail(strict=False, reason="rt25: the cache below the VM keeps the blocks a worker read")
def test_lower_cache_bits_do_not_reach_a_later_evaluation(tmp_path: Path) -> None:
    if not os.path.exists("/dev/vda"):
        pytest.skip("not a virtio-disk guest: no cache below this kernel to read")
    sites = _sites(BITS * K)
    if sites is None:
        pytest.skip("not enough uncached pages of large /usr files on this host")
    rng = secrets.SystemRandom()
    secret = "".join(rng.choice("01") for _ in range(BITS - 2)) + "10"
    writer, reader = tmp_path / "writer.py", tmp_path / "reader.py"
    writer.write_text(WRITER.format(sites=sites, k=K, secret=secret))
    reader.write_text(READER.format(sites=sites, k=K))
    cfg = EvalConfig(max_timing_s=2, rounds=3, call_timeout_s=30, setup_timeout_s=60, confirm=False, quality_seeds=2)
    first = evaluate(TASK, writer, cfg)
    assert first["compiled"], first
    assert not any(residency(p)[i] for p, i in sites), "the writer's pages were not evicted (round 10's fix)"
    second = evaluate(TASK, reader, cfg)
    seen = re.search(r"seen ([01]+)", second.get("reason") or "")
    assert seen is None or seen.group(1) != secret, (secret, second.get("reason"))
