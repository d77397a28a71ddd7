"""Honest copies of tasks with unusual outputs or randomness pass (issue 16, red-team round 1).

A forward returning a dict was `rejected` (the comparison asked a tensor for its truth
value); a task whose get_init_inputs draws from torch's RNG built the reference and the
candidate with different weights; dropout in training mode drew different masks in the two
workers. Each honest copy below failed before and must be correct now, while a copy that
changes one value, a key, or ignores the seed still fails.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import run, write

pytest.importorskip("torch")

FAST = {"max_timing_s": 2, "rounds": 5, "trials": 2}

DICT_TASK = '''
import torch
import torch.nn as nn

N = 64

class Model(nn.Module):
    def forward(self, x):
        return {"y": torch.tanh(x) * 2.0, "n": 3}

def get_inputs():
    return [torch.randn(N, N)]

def get_init_inputs():
    return []
'''

INIT_RNG_TASK = '''
import torch
import torch.nn as nn

N = 32

class Model(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.fc = nn.Linear(N, N)
        self.register_buffer("scale", scale)

    def forward(self, x):
        return self.fc(x) * self.scale

def get_inputs():
    return [torch.randn(8, N)]

def get_init_inputs():
    return [torch.rand(N) + 0.5]
'''

DROPOUT_TASK = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, in_features, out_features, dropout_p):
        super().__init__()
        self.matmul = nn.Linear(in_features, out_features)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, x):
        return torch.softmax(self.dropout(self.matmul(x)), dim=1)

batch_size = 16
in_features = 64
out_features = 64
dropout_p = 0.2

def get_inputs():
    return [torch.rand(batch_size, in_features)]

def get_init_inputs():
    return [in_features, out_features, dropout_p]
'''


def _copy(task: str) -> str:
    return task.replace("class Model(", "class ModelNew(")


@pytest.mark.parametrize("task", [DICT_TASK, INIT_RNG_TASK, DROPOUT_TASK], ids=["dict", "init-rng", "dropout"])
def test_an_honest_copy_is_correct(tmp_path, task):
    res = run(write(tmp_path, "task.py", task), write(tmp_path, "sol.py", _copy(task)), **FAST)
    assert res["correct"] is True, (res["verdict"], res.get("reason"))


@pytest.mark.parametrize("change", [('"y"', '"z"'), ("* 2.0", "* 2.001"), ('"n": 3', '"n": 4')],
                         ids=["key", "value", "scalar"])
def test_a_dict_output_that_differs_is_incorrect(tmp_path, change):
    sol = _copy(DICT_TASK).replace(*change)
    res = run(write(tmp_path, "task.py", DICT_TASK), write(tmp_path, "sol.py", sol), **FAST)
    assert res["verdict"] == "incorrect", (res["verdict"], res.get("reason"))


def test_dropout_that_ignores_the_seed_is_incorrect(tmp_path):
    sol = _copy(DROPOUT_TASK).replace("self.dropout(self.matmul(x))",
                                      "self.dropout(self.matmul(x + 0 * torch.rand(1)))")
    res = run(write(tmp_path, "task.py", DROPOUT_TASK), write(tmp_path, "sol.py", sol), **FAST)
    assert res["verdict"] == "incorrect", (res["verdict"], res.get("reason"))
