"""Red team 6: every size the trials drew left a remainder of 1 by 4 on a power-of-two task.

The scaled trial (v // 2 + 1), the stress size (then the next odd size, v + 1) and the tiny
size (1) all leave one element past the last multiple of 4 when the task's size is a power of
two: a kernel whose tail loop handled one leftover element (wrong whenever dim % 4 is 2 or 3)
passed every trial and was judged `same`, correct. The stress size is now one short of a
multiple of 16 (remainders 15, 7, 3, 1 of widths 16, 8, 4, 2).
"""
from __future__ import annotations

import pytest

from kopt.sandboxes.eval_trials import edge_shapes
from tests.redteam._kb import run, world_readable, write

TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2.0


batch_size = 16
dim = 256


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
'''

ONE_ELEMENT_TAIL = '''
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        n = x.shape[-1]
        body = n // 4 * 4
        out = torch.zeros_like(x)
        out[..., :body] = torch.relu(x[..., :body]) * 2.0
        if n > body:
            out[..., body] = torch.relu(x[..., body]) * 2.0  # the tail loop runs once
        return out
'''


@pytest.mark.parametrize("v", [4, 8, 15, 16, 100, 256, 1024, 4096])
def test_stress_size_leaves_the_longest_tail(v):
    odd = edge_shapes({"n": v})[1]["n"]
    assert odd > v and odd % 2 == 1
    assert all(odd % w == w - 1 for w in (2, 4, 8, 16)), odd


def test_a_one_element_tail_loop_is_incorrect():
    pytest.importorskip("torch")
    d = world_readable()
    res = run(write(d, "task.py", TASK), write(d, "tail.py", ONE_ELEMENT_TAIL))
    assert res["verdict"] == "incorrect", res
    assert "stress-shape" in res["reason"], res
