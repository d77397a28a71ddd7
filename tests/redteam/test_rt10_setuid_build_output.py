"""rt10: a candidate plants a setuid copy of /bin/sh, owned by kopt's user, in the shared build cache.

Attack: ModelNew.__init__ copies /bin/sh into its build folder as `rt10suid.so` (a build
output's name) and chmods it 04755. The build folder is an id-mapped bind: what the worker
writes lands on the host owned by kopt's user (root here). At the end of the evaluation
`build_cache.promote` copies it into the shared cache with `shutil.copystat`, which copies the
permission bits *including* setuid/setgid.
Before: ~/.cache/kopt/sbx/<key>/rt10suid.so, mode 0o104755, uid 0 -- a setuid-root shell on
the host's disk, made by sandboxed code (verdict `same`). /root is 0700 here, so only root can
reach it; with kopt run by a normal user whose home or $KOPT_CACHE_DIR others can traverse
(Debian homes are 0755, ~/.cache is often 0755), any local user runs a shell as that user.
The file also sits setuid in the worker's own run folder while the evaluation runs.
Root cause: the worker may set mode bits on its build folder's files, and promote copies them.
Fix: mount the build folder nosuid on the host side too (or copy outputs with mode & 0o755 --
`shutil.copyfile` then `os.chmod(tmp, st.st_mode & 0o755)` instead of copystat), and refuse
(or strip) setuid/setgid/sticky bits on anything under the build folder when the worker ends.
"""
from __future__ import annotations

import shutil
import stat
from pathlib import Path

from kopt.sandboxes.eval_session import build_cache_dir
from kopt.sandboxes.evaluator import EvalConfig, evaluate

TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "relu.py"
SOLUTION = '''
import os
import shutil
import torch


class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        dst = os.path.join(os.environ["KOPT_CACHE_DIR"], "rt10suid.so")  # named like a build output
        shutil.copyfile("/bin/sh", dst)
        os.chmod(dst, 0o4755)

    def forward(self, x):
        return torch.relu(x)
'''


def test_promoted_build_outputs_are_never_setuid(tmp_path: Path) -> None:
    sol = tmp_path / "suid.py"
    sol.write_text(SOLUTION)
    shared = build_cache_dir(SOLUTION)
    try:
        evaluate(TASK, sol, EvalConfig(max_timing_s=2, rounds=3, call_timeout_s=30, setup_timeout_s=60,
                                       confirm=False, quality_seeds=2))
        special = {str(p): oct(p.lstat().st_mode) for p in shared.rglob("*")
                   if p.is_file() and p.lstat().st_mode & (stat.S_ISUID | stat.S_ISGID)}
    finally:
        shutil.rmtree(shared, ignore_errors=True)
        marker = shared.with_name(shared.name + ".promoted")
        if marker.exists():
            marker.unlink()
    assert not special, special
