"""rt12: which pages the host's page cache holds, read from the disk's own I/O counters.

Attack: run A (a confined repository command, TreeShell) stores a 32-bit secret by reading
one byte at `i MiB` of a read-only file for each 1 bit (the page is cached from then on).
Run B, in a fresh sandbox, reads `/sys/dev/block/MAJ:MIN/stat` (the host disk's reads
completed), reads one byte at each offset, and reads the counter again: no new disk read
means the page was cached, i.e. a 1. run_confinement's Landlock hides /proc, /sys/fs/cgroup
and the NUMA counters, and seccomp refuses getrusage, perf_event_open, AIO, mincore, ...;
the block layer's counters (/sys/block/*/stat, /sys/class/block, /sys/dev/block) stay readable.

Measured: secret 01000000010111010001010010110010 stored by A, B printed
01000000010111010001010010110010 (32/32 bits), on a host with other load; the same reader
replaces the refused majflt/AIO/perf readers of red teams 9-11 (a program's or a repository
bench's answers kept between runs).

Root cause: sandboxes/run_confinement.py `HIDDEN` (and the KernelBench worker's
harness_support.confine_reads) leaves /sys/block, /sys/class/block, /sys/dev/block and
/sys/devices/**/stat readable: host-wide disk counters that move exactly on a page-cache miss.
Fix idea: hide all of /sys but what torch needs (e.g. /sys/devices/system/cpu), or mount an
empty /sys in the jail.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from kopt.agent.targets.repo.shell_commands import TreeShell

PROBE = '''import os
import sys

path, mode, stat = sys.argv[1], sys.argv[2], sys.argv[3]
bits = sys.argv[4] if len(sys.argv) > 4 else ""
fd = os.open(path, os.O_RDONLY)


def reads():
    with open(stat) as f:
        return int(f.read().split()[0])


if mode == "store":
    for i, b in enumerate(bits):
        if b == "1":
            os.pread(fd, 1, i << 20)
    print("stored")
else:
    out = []
    for i in range(32):
        r0 = reads()
        os.pread(fd, 1, i << 20)
        out.append("1" if reads() == r0 else "0")
    print("read", "".join(out))
'''


def _run(tree: Path, cmd: str) -> str:
    sh = TreeShell(tree, [])
    try:
        r = sh.run(cmd, 60)
    finally:
        sh.close()
    return r.output


def test_disk_counters_do_not_tell_cached_pages(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "probe.py").write_text(PROBE)
    blob = tree / "blob.bin"
    with open(blob, "wb") as f:
        f.write(os.urandom(32 << 20))
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(blob, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    dev = os.stat(blob).st_dev
    stat = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/stat"
    if not os.path.exists(stat):
        pytest.skip(f"no {stat} on this host")
    secret = "".join(secrets.choice("01") for _ in range(32))
    _run(tree, f"python3 probe.py blob.bin store {stat} {secret}")
    out = _run(tree, f"python3 probe.py blob.bin read {stat}")
    assert f"read {secret}" not in out, (secret, out[-200:])
