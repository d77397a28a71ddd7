"""rt11: the build folder's cap does not see files that were unlinked but are still open.

Attack: at import the candidate opens three files in `$KOPT_CACHE_DIR` (its writable build
folder, on the host's disk through the jail's bind), unlinks each at once and then writes
512 MiB into it, keeping the descriptors open for the worker's life. The folder kopt measures
every 0.05 s (`eval_channel.Channel._answered`) and after every stage
(`eval_session._check_cache_size`) stays empty; the blocks stay allocated on the host's disk
until the worker dies. RLIMIT_FSIZE (2 GiB) bounds one file, RLIMIT_NOFILE (1024) the count.

Before (measured, 2-core machine): verdict `same` (no reason), the host filesystem under
~/.cache/kopt grew by 1536 MB at the peak during a 9.8 s evaluation (cap 512 MB; the
round-10 fix rejects a visible 1.5 GB at 520-750 MB), 0 MB after.

Root cause: sandboxes/local.py cache_problem -> fs_walk.usage counts only the files it can
list under the folder; an unlinked file's blocks belong to no name (nor does a file written
through a descriptor opened before a rename out of the folder).
Fix: bound the folder by what the filesystem holds, not by its names: a size-capped mount
for the build folder (a tmpfs or loop image with size=cache_mb, promoted from there), or
while polling also sum /proc/<worker pids>/fd links into the folder that read "(deleted)"
(and their st_blocks), or lower RLIMIT_FSIZE to the cap and RLIMIT_NOFILE accordingly.
"""
from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from kopt.sandboxes.evaluator import EvalConfig, evaluate
from kopt.sandboxes.native import cache_root

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASK = os.path.join(ROOT, "benchmarks", "examples", "relu_task.py")

SOLUTION = '''
import os

import torch
import torch.nn as nn

_held = []
_folder = os.environ["KOPT_CACHE_DIR"]
_chunk = b"\\xa5" * (8 << 20)
for _i in range(3):
    _path = os.path.join(_folder, f"blob{_i}.o")
    _fd = os.open(_path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.unlink(_path)  # gone from the folder kopt measures, still on the host's disk
    for _k in range(64):  # 512 MiB each
        os.write(_fd, _chunk)
    _held.append(_fd)


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.relu(x)
'''


def test_unlinked_files_count_against_the_build_folder_cap(tmp_path):
    root = str(cache_root())
    root_dir = os.path.dirname(root) if not os.path.exists(root) else root
    if shutil.disk_usage(root_dir).free < 8 << 30:
        pytest.skip("less than 8 GB free where the build folders live")
    sol = tmp_path / "sol.py"
    sol.write_text(SOLUTION)
    base = shutil.disk_usage(root_dir).used
    peak, stop = [0], threading.Event()

    def poll():
        while not stop.is_set():
            peak[0] = max(peak[0], shutil.disk_usage(root_dir).used - base)
            time.sleep(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        res = evaluate(TASK, str(sol), EvalConfig(device="cpu"))
    finally:
        stop.set()
        watcher.join()
    grown_mb = peak[0] >> 20
    # correct: the host's disk never holds much more than the folder's 512 MB cap for it
    assert grown_mb < 1024, f"{res['verdict']} ({res.get('reason')}), host disk grew by {grown_mb} MB"
