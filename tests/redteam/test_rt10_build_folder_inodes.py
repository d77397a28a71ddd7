"""rt10: 50 000 empty `.o` files from one candidate are kept for good in the shared build cache.

Attack: ModelNew.__init__ creates 50 000 empty files named like build outputs (`f<i>.o`, in
50 folders) in its build folder ($KOPT_CACHE_DIR). Their total size is 0 MB, so no size cap
sees them; `build_cache.promote` copies every one into the shared cache of this source
(~/.cache/kopt/sbx/<key>: "regular files of a build output's kind ... within a byte budget"),
where they stay, and `fresh_cache_dir` copies all of them into the folder of every later
evaluation of the same source. kopt also walks them every 0.1 s while it waits (folder_mb).
Before: all of them were in the shared cache after one evaluation (100 000 in a first try;
verdict `same`, correct). A few million -- a minute of setup -- exhaust the host filesystem's inodes
(16.7 M here), and each candidate text (a comment changed) gets its own shared folder.
Root cause: every cap on the build folder counts bytes, none counts entries.
Fix: cap the number of files (and folders) a build folder may hold -- while it runs (with the
0.1 s poll) and in promote (keep at most a few thousand, or nothing past the cap) -- and bound
the shared cache as a whole (entries and bytes, oldest evicted).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from kopt.sandboxes.eval_session import build_cache_dir
from kopt.sandboxes.evaluator import EvalConfig, evaluate

TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "relu.py"
SOLUTION = '''
import os
import torch


class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        root = os.environ["KOPT_CACHE_DIR"]  # the worker's own writable build folder
        for d in range(50):
            folder = os.path.join(root, f"objs{d}")
            os.mkdir(folder)
            for i in range(1000):
                open(os.path.join(folder, f"f{i}.o"), "wb").close()

    def forward(self, x):
        return torch.relu(x)
'''


def test_build_folder_entries_are_bounded(tmp_path: Path) -> None:
    sol = tmp_path / "inodes.py"
    sol.write_text(SOLUTION)
    shared = build_cache_dir(SOLUTION)
    try:
        evaluate(TASK, sol, EvalConfig(max_timing_s=2, rounds=3, call_timeout_s=30, setup_timeout_s=120,
                                       confirm=False, quality_seeds=2))
        kept = sum(len(files) for _, _, files in shared.walk()) if hasattr(shared, "walk") else \
            sum(1 for p in shared.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(shared, ignore_errors=True)
        marker = shared.with_name(shared.name + ".promoted")
        if marker.exists():
            marker.unlink()
    assert kept <= 10_000, f"{kept} files kept in the shared build cache"
