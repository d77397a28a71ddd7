"""Red team 7: a 32-wide main loop whose tail forgot a whole 16-block passed every trial.

The stress size was one short of a multiple of 16 (remainder 15), so on a 4096-wide task
the trials drew n % 32 in {0, 1, 15} only: a kernel with a 32-wide body (8 floats unrolled
4x) and a tail that handled only `(n - body) % 16` elements (wrong whenever n % 32 >= 16)
was judged correct. Sizes of 64 and more now get a stress size one short of a multiple of
64 (remainder 63: 31 of 32, 15 of 16, ...).
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
        return torch.relu(x)


batch_size = 4
dim = 256


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
'''

FORGOTTEN_BLOCK = '''
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        n = x.shape[-1]
        body = n // 32 * 32
        out = torch.zeros_like(x)
        out[..., :body] = torch.relu(x[..., :body])
        tail = (n - body) % 16  # forgets a 16-block when n % 32 >= 16
        if tail:
            out[..., n - tail:] = torch.relu(x[..., n - tail:])
        return out
'''


@pytest.mark.parametrize("v", [64, 100, 256, 1024, 4096])
def test_wide_sizes_get_the_longest_tail_of_64(v):
    odd = edge_shapes({"n": v})[1]["n"]
    assert odd > v and all(odd % w == w - 1 for w in (2, 4, 8, 16, 32, 64)), odd


def test_a_tail_that_forgets_a_16_block_is_incorrect():
    pytest.importorskip("torch")
    d = world_readable()
    res = run(write(d, "task.py", TASK), write(d, "tail.py", FORGOTTEN_BLOCK))
    assert res["verdict"] == "incorrect", res
    assert "stress-shape" in res["reason"], res
