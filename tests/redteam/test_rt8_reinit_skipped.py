"""Red team 8: a ModelNew that ignored its own parameters skipped the re-initialised trial.

The re-initialised-weights trial (a solution tuned to seed 42's weights fails it) ran only
when ModelNew's float parameters lined up with Model's in full, shape and values. One extra
parameter switched it off, with no note: a forward that used a frozen copy of the seed-42
weights instead of its parameters was `same` and correct, and wrong for any other weights.
Now every reference parameter the candidate holds too (same shape and values, in any order)
is re-drawn on both sides (eval_trials.param_pairs). Left: weights held only as buffers or
plain tensors have no twin among the parameters, and the trial is skipped as before.
"""
from __future__ import annotations

from pathlib import Path

from tests.redteam._kb import run, write

TASK = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def forward(self, x):
        return torch.relu(self.fc(x))


def get_inputs():
    return [torch.randn(16, 32)]


def get_init_inputs():
    return [32, 24]
'''

FROZEN = '''import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)
        self.scale = nn.Parameter(torch.ones(1))  # only so that the parameter lists differ
        self.frozen_w = self.fc.weight.detach().clone()
        self.frozen_b = self.fc.bias.detach().clone()

    def forward(self, x):
        return torch.relu(torch.addmm(self.frozen_b, x, self.frozen_w.t()))
'''


def test_a_forward_that_ignores_its_parameters_is_not_correct(tmp_path: Path):
    res = run(write(tmp_path, "task.py", TASK), write(tmp_path, "frozen.py", FROZEN))
    assert res["verdict"] == "incorrect", res
