"""Red team 20: wherever the reference's output is +-inf, checks.compare accepts any value
from the candidate. `diff <= atol + rtol * |r|` is `inf <= inf` (True) for a finite value or an
infinity of the other sign, and the relative-norm test compares inf with inf*c (False). So a
candidate that returns +inf where the reference returns -inf (or 0, or anything finite) is
judged correct. Fix: where the reference is +-inf only the same infinity matches."""
from __future__ import annotations

from tests.redteam._kb import run, world_readable, write

TASK = """import torch
import torch.nn as nn

batch_size = 16
dim = 1024


class Model(nn.Module):
    def forward(self, x):
        return torch.log(torch.relu(x))  # -inf wherever x <= 0


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
"""

SOLUTION = """import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        # wrong on half of the elements: +inf where the reference has -inf
        return torch.where(x > 0, torch.log(x.abs()), torch.full_like(x, float("inf")))
"""


def test_inf_positions_are_not_wildcards():
    import torch

    from kopt.sandboxes.checks import Tolerance, compare

    r = torch.tensor([float("-inf"), 1.0])
    for wrong in (float("inf"), 0.0, 123.0):
        assert compare(r, torch.tensor([float("-inf"), 1.0]), Tolerance()).ok
        c = compare(r, torch.tensor([wrong, 1.0]), Tolerance())
        assert not c.ok, f"-inf vs {wrong} judged equal"


def test_wrong_sign_infinity_is_incorrect():
    d = world_readable()
    task, sol = write(d, "task_log.py", TASK), write(d, "sol_log.py", SOLUTION)
    for p in (task, sol):
        p.chmod(0o644)
    res = run(task, sol)
    assert res["verdict"] == "incorrect" and not res["correct"], res
