"""rt10: 1500 nested folders in the candidate's build folder crash kopt (RecursionError in os.walk).

Attack: ModelNew.__init__ goes to its writable build folder ($KOPT_CACHE_DIR) and makes 1500
nested folders one level at a time (mkdir + chdir: no long path, no recursion on its side).
Before: `evaluate()` raised `RecursionError: maximum recursion depth exceeded` from
local.folder_mb (os.walk is recursive in Python 3.11), which e7825b3 calls every 0.1 s while
kopt waits for a reply (eval_channel.Channel._answered); `kopt eval` printed a traceback. The
same walk runs in build_cache.promote/_regular_files and Worker.kill, and shutil.rmtree
(recursive too, `ignore_errors` does not cover RecursionError) left the folder on the host:
after STALE_S (6 h) `_remove_stale` meets it at the start of *every* later evaluation.
Root cause: kopt walks and deletes a folder whose shape the candidate chose with recursive
library code in its own process.
Fix: walk iteratively with a depth and entry budget (a stack of os.scandir, stop past e.g.
64 levels / 100 000 entries: `rejected`), delete with `rm -rf` (or an iterative unlinkat
loop) -- or give the worker a build folder on a tmpfs/loop mount kopt can drop whole.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kopt.sandboxes.evaluator import EvalConfig, evaluate
from kopt.sandboxes.native import cache_root

TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "relu.py"
SOLUTION = '''
import os
import torch


class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        here = os.getcwd()
        os.chdir(os.environ["KOPT_CACHE_DIR"])  # the worker's own writable build folder
        os.mkdir("rt10deep")
        os.chdir("rt10deep")
        for _ in range(1500):  # one level at a time: os.makedirs would recurse itself
            os.mkdir("d")
            os.chdir("d")
        os.chdir(here)

    def forward(self, x):
        return torch.relu(x)
'''


def _clean_leftovers() -> None:
    """What a crashed evaluation left in the run folders (rm -rf copes with the depth)."""
    runs = cache_root() / "sbx-run"
    for leftover in runs.glob("*/rt10deep") if runs.is_dir() else []:
        subprocess.run(["rm", "-rf", str(leftover)], check=False)


def test_deep_build_folder_is_a_verdict(tmp_path: Path) -> None:
    if shutil.which("rm") is None:
        pytest.skip("no rm to clean up after the attack")
    sol = tmp_path / "deep.py"
    sol.write_text(SOLUTION)
    try:
        res = evaluate(TASK, sol, EvalConfig(max_timing_s=2, rounds=3, call_timeout_s=30, setup_timeout_s=60))
    finally:
        _clean_leftovers()
    # a verdict, not a RecursionError: 1500 folders are under every cap, so the run goes on
    assert res["verdict"] in ("same", "rejected", "runtime_error"), res
