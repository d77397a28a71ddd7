"""rt24 (honest): the jail's new seccomp rules (madvise MADV_PAGEOUT/MADV_COLD, process_madvise
and migrate_pages refused, session 17) break no ordinary bench.

A candidate computing with numpy (its allocator returns memory with madvise) whose bench, like
the original's, also builds and runs a C program that mallocs and frees 64 MiB (glibc's trim:
MADV_DONTNEED), asks git its version and runs a node and a java allocation (V8's and the JVM's
own madvise use), where those are installed. Measured here: every tool ran, no timed run of
either side read from disk. Honest outcome: not `rejected`, the candidate's runs read nothing.
"""
from __future__ import annotations

import shutil

import pytest

from tests.targets.test_repo_disk_reads import _evaluate

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git missing")

TOOLS = """import os, shutil, subprocess, tempfile
from lib.work import total

C = ('#include <stdio.h>\\n#include <stdlib.h>\\nint main(void){{char *p = malloc(1 << 26);'
     'for (int i = 0; i < 1 << 26; i += 4096) p[i] = 1; free(p); puts("c ok"); return 0;}}\\n')
here = tempfile.mkdtemp()
runs = [["git", "--version"]]
if shutil.which("cc"):
    with open(os.path.join(here, "h.c"), "w") as f:
        f.write(C)
    subprocess.run(["cc", "-O2", "-o", os.path.join(here, "h"), os.path.join(here, "h.c")], check=True)
    runs.append([os.path.join(here, "h")])
if shutil.which("node"):
    runs.append(["node", "-e", "const b = []; for (let i = 0; i < 100; i++) b.push(new Array(1e5).fill(i))"])
if shutil.which("java"):
    runs.append(["java", "-Xmx256m", "-version"])
for cmd in runs:
    subprocess.run(cmd, check=True, capture_output=True)
shutil.rmtree(here)
print(total(300000))
"""

NUMPY = """import numpy as np


def total(n):
    i = np.arange(n, dtype=np.int64)
    return int(((i * i) % 7).sum())
"""


def test_numpy_and_common_tools_run_in_the_jail_and_read_nothing(tmp_path):
    pytest.importorskip("numpy")
    res = _evaluate(tmp_path, NUMPY, TOOLS)
    seen = (res["verdict"], res.get("reason"), res.get("checks", {}).get("disk_read_runs"))
    print("rt24 honest toolchain:", seen)
    assert res["verdict"] not in ("rejected", "error", "failed"), seen
    assert res["checks"]["disk_read_runs"]["new"] <= 1, seen
