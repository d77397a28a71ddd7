"""Red team round 4: the re-initialised-weights trial ran whenever ModelNew's parameter
*shapes* listed the same as Model's, and re-drew them by position. A correct ModelNew that
registers two same-shaped layers in the other order (its weights equal to the reference's,
layer for layer) had each layer given the other's new values and was judged `incorrect`.
The trial now also needs the parameters' values to line up, position by position."""
from __future__ import annotations

import pytest

from tests.redteam._kb import run, world_readable, write

pytest.importorskip("torch")

TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.a = nn.Linear(d, d)
        self.b = nn.Linear(d, d)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


batch_size = 32
d = 64


def get_inputs():
    return [torch.randn(batch_size, d)]


def get_init_inputs():
    return [d]
'''

REORDERED = '''
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    """The same network, its second layer registered first: the same weights, drawn in the
    reference's order."""

    def __init__(self, d):
        super().__init__()
        a = nn.Linear(d, d)
        b = nn.Linear(d, d)
        self.b = b
        self.a = a

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))
'''


def test_same_network_with_layers_registered_in_another_order_is_correct(tmp_path):
    task = write(world_readable(), "two_linear.py", TASK)
    res = run(task, write(tmp_path, "reordered.py", REORDERED), trials=2)
    assert res["correct"] and res["verdict"] in ("faster", "same", "slower"), (res["verdict"], res.get("reason"))


def test_a_plain_copy_still_gets_the_reinitialised_trial(tmp_path):
    task = write(world_readable(), "two_linear.py", TASK)
    res = run(task, write(tmp_path, "copy.py", TASK.replace("class Model(", "class ModelNew(")), trials=2)
    assert res["correct"], (res["verdict"], res.get("reason"))
    assert res["checks"].get("weights_reinitialised") is True, res["checks"]
