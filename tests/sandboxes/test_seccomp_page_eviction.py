"""The jail's seccomp filter refuses what pushes pages out of the page cache (red team 23:
a run read a tree file's uncached pages, then paged them out, so its cache growth, kopt's
count of what it read, came to nothing) and leaves the rest of madvise alone."""
from __future__ import annotations

import ast
import errno
import platform
import subprocess
import sys

import pytest

from kopt.sandboxes.jailhelp import ARCHES

pytestmark = pytest.mark.skipif(platform.machine() not in ARCHES or not sys.platform.startswith("linux"),
                                reason="the seccomp table covers x86_64 and aarch64 Linux")

# in a child: the filter installed, then each call on a mapping of the file (errno, 0 = allowed)
CHILD = """
import ctypes, mmap, os, sys
from kopt.sandboxes.jailhelp import ARCHES, PROCESS_MADVISE, install_filter
nr = ARCHES[os.uname().machine][1]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
f = open(sys.argv[1], "rb")
m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
base = libc.mmap(None, len(m), 1, 1, f.fileno(), 0)  # PROT_READ, MAP_SHARED
install_filter()
out = []
for call, args in [(nr["madvise"], (base, len(m), a)) for a in (21, 20, 3, 4)] + \\
        [(PROCESS_MADVISE, (0, 0, 0, 0, 0)), (nr["migrate_pages"], (0, 0, 0, 0))]:
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(call), *(ctypes.c_long(a) for a in args))
    out.append(ctypes.get_errno() if r == -1 else 0)
print(out)
"""


def test_page_eviction_is_refused_and_other_advice_is_not(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 16384)
    r = subprocess.run([sys.executable, "-c", CHILD, str(data)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    pageout, cold, willneed, dontneed, process_madvise, migrate = ast.literal_eval(r.stdout.strip())
    assert (pageout, cold) == (errno.EPERM, errno.EPERM)
    assert (willneed, dontneed) == (0, 0)
    assert (process_madvise, migrate) == (errno.EPERM, errno.EPERM)
