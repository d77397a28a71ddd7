"""Red team 5: equal-valued input constants (H = W) moved together in every trial, so a kernel
that mixed the two dims up passed them all. The untied-size trial gives them different values
(judged reference-first: a task that needs them equal skips it); the odd stress size is odd."""
from __future__ import annotations

import pytest

from kopt.sandboxes.eval_trials import edge_shapes, untied_shapes
from tests.redteam._kb import as_solution, run, write

ROW_SUM_TASK = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    """Row sums of a batch of H x W images."""
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x.sum(dim=-1)

batch_size = 4
height = 16
width = 16

def get_inputs():
    return [torch.randn(batch_size, height, width)]

def get_init_inputs():
    return []
'''

# the row stride taken from H instead of W: right on every square input, wrong otherwise
SWAPPED_DIMS = '''
import torch
import torch.nn as nn

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        b, h, w = x.shape
        flat = x.reshape(b, -1)
        return torch.stack([flat[:, i * h:(i + 1) * h].sum(1) for i in range(h)], 1)
'''

# x @ x needs the square: the untied trial is rejected by the reference, never blamed on a copy
SQUARE_TASK = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x @ x

rows = 16
cols = 16

def get_inputs():
    return [torch.randn(rows, cols)]

def get_init_inputs():
    return []
'''


def test_untied_shapes_give_each_group_distinct_values():
    shapes = untied_shapes({"batch_size": 4, "height": 16, "width": 16, "depth": 16, "n": 7})
    assert shapes == [{"height": 16, "width": 17, "depth": 18}]
    assert untied_shapes({"h": 8, "w": 9}) == []


def test_odd_stress_size_is_odd():
    assert edge_shapes({"n": 5, "m": 8}) == [{"n": 1, "m": 1}, {"n": 15, "m": 15}]  # odd: one short of 16k (rt6)


def test_a_kernel_that_swaps_equal_dims_is_incorrect(tmp_path):
    pytest.importorskip("torch")
    task = write(tmp_path, "task.py", ROW_SUM_TASK)
    res = run(task, write(tmp_path, "swapped.py", SWAPPED_DIMS))
    assert res["verdict"] == "incorrect", (res["verdict"], res.get("reason"))
    assert res["checks"]["mismatch"]["trial"].startswith("untied-size"), res["checks"]["mismatch"]


def _assert_correct_copy(res: dict) -> None:
    # the correctness side is what is tested; a copy this small reads same or (noise) slower
    assert res["correct"] is True and res["verdict"] in ("same", "slower"), \
        (res["verdict"], res.get("reason"), res["checks"])


def test_an_honest_copy_passes_the_untied_trial(tmp_path):
    pytest.importorskip("torch")
    task = write(tmp_path, "task.py", ROW_SUM_TASK)
    res = run(task, write(tmp_path, "copy.py", as_solution(ROW_SUM_TASK)))
    _assert_correct_copy(res)
    assert not any("untied" in s for s in res["checks"].get("skipped", [])), res["checks"]


def test_a_task_that_needs_equal_dims_skips_the_untied_trial(tmp_path):
    pytest.importorskip("torch")
    task = write(tmp_path, "square.py", SQUARE_TASK)
    res = run(task, write(tmp_path, "copy.py", as_solution(SQUARE_TASK)))
    _assert_correct_copy(res)
    skipped = res["checks"].get("skipped", [])
    assert any("untied-size" in s and "reference rejects" in s for s in skipped), skipped
