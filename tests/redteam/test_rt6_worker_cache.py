"""Red team 6: no state from one evaluation reaches the next through the build cache.

Round 5: a counter file in `$KOPT_CACHE_DIR` (the build cache, one writable folder per
source kept between evaluations) read 0, then 1: the second evaluation of the same source
knew it was not the first. Now each worker builds in a fresh folder and only files of a
build output's kind are promoted to the shared cache, once, never overwritten.
"""
from __future__ import annotations

import re

import pytest

from tests.redteam._kb import relu_task, run, world_readable, write

pytest.importorskip("torch")

TASK = relu_task(8, 16)

COUNTER = '''
import os

import torch.nn as nn

_path = os.path.join(os.environ.get("KOPT_CACHE_DIR", "."), "NAME")
try:
    _seen = int(open(_path).read())
except (OSError, ValueError):
    _seen = 0
with open(_path, "w") as f:
    f.write(str(_seen + 1))


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        raise RuntimeError(f"previous_evals={_seen}")
'''


def _counts(monkeypatch, name: str, times: int) -> list[int]:
    monkeypatch.setenv("KOPT_CACHE_DIR", str(world_readable()))  # kopt's cache root, the workers' parent
    d = world_readable()
    task, sol = write(d, "task.py", TASK), write(d, "solution.py", COUNTER.replace("NAME", name))
    seen = []
    for _ in range(times):
        res = run(task, sol)
        m = re.search(r"previous_evals=(\d+)", res.get("reason") or "")
        assert res["verdict"] == "runtime_error" and m, res
        seen.append(int(m.group(1)))
    return seen


def test_a_counter_in_the_build_cache_is_not_seen_by_the_next_evaluation(monkeypatch):
    assert _counts(monkeypatch, "count", 2) == [0, 0]


def test_a_counter_named_like_a_build_output_is_kept_once_and_never_counts(monkeypatch):
    # promoted once, as the first evaluation left it: "not the first" at most, never a count
    assert _counts(monkeypatch, "count.so", 3) == [0, 1, 1]
