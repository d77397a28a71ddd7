"""Red team 7: the build cache counted the evaluations of one source.

Round 6 promoted a build output once and never over itself, so a counter named like one
(`count.so`) read 0, 1, 1. A file of a new name each time (`count_<n>.so`, n = how many it
found) was promoted by every evaluation: the third evaluation saw two, a count of the
evaluations before it. Now only the first evaluation that leaves build outputs promotes any.
"""
from __future__ import annotations

import re

import pytest

from kopt.sandboxes import build_cache
from tests.redteam._kb import relu_task, run, world_readable, write

COUNTER = '''
import glob
import os

import torch.nn as nn

_dir = os.environ.get("KOPT_CACHE_DIR", ".")
_seen = len(glob.glob(os.path.join(_dir, "count_*.so")))
with open(os.path.join(_dir, f"count_{_seen}.so"), "w") as f:
    f.write("state")


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        raise RuntimeError(f"previous_evals={_seen}")
'''


def test_only_the_first_evaluation_promotes(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path / "root"))
    shared = build_cache.build_cache_dir("src", "tool")
    for n in range(3):
        run_dir = build_cache.fresh_cache_dir(shared)
        (run_dir / f"count_{n}.so").write_text("state")
        build_cache.promote(run_dir, shared)
    assert sorted(p.name for p in shared.iterdir()) == ["count_0.so"]


def test_new_names_each_evaluation_do_not_count_them(monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("KOPT_CACHE_DIR", str(world_readable()))  # kopt's cache root, the workers' parent
    d = world_readable()
    task, sol = write(d, "task.py", relu_task(8, 16)), write(d, "solution.py", COUNTER)
    seen = []
    for _ in range(3):
        res = run(task, sol)
        m = re.search(r"previous_evals=(\d+)", res.get("reason") or "")
        assert res["verdict"] == "runtime_error" and m, res
        seen.append(int(m.group(1)))
    assert seen == [0, 1, 1]  # "not the first" at most, never a count
