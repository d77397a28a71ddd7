"""Red team 26: the float64 second opinion takes |ref32 - ref64| for the reference's own rounding
error, but a forward that draws random numbers draws different ones in float64 (torch.randn with
the same seed gives unrelated float64 values). Small noise keeps that "error" under REF_ERROR_CAP
(1% of the norm), so it becomes slack: a candidate that draws nothing and adds a bias four times
the noise's scale is `correct`, although kopt seeds both sides alike so that an honest candidate
reproduces the reference's draws.
Fixed: no second opinion where the float64 forward draws random numbers (the generators' states before and after)."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")

from kopt.sandboxes.evaluator import EvalConfig, evaluate  # noqa: E402

# written for this test: a linear layer with a little Gaussian noise on its output (0.1% of its scale)
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(256, 256)

    def forward(self, x):
        y = self.fc(x)
        return y + 1e-3 * y.abs().mean() * torch.randn_like(y)


def get_inputs():
    return [torch.randn(64, 256)]


def get_init_inputs():
    return []
'''
# no noise, and every output too high by four times the noise's scale
BIASED = '''
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(256, 256)

    def forward(self, x):
        y = self.fc(x)
        return y + 4e-3 * y.abs().mean()
'''
CFG = dict(rounds=3, max_timing_s=1, trials=2, quality_seeds=2, confirm=False)


def test_a_biased_candidate_that_skips_the_random_draws_is_incorrect(tmp_path):
    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "sol.py").write_text(BIASED)
    r = evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(**CFG))
    assert not r["correct"] and r["verdict"] == "incorrect", (r["verdict"], r["checks"])


def test_the_reference_itself_is_correct(tmp_path):
    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "sol.py").write_text(TASK.replace("class Model(", "class ModelNew("))
    r = evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(**CFG))
    assert r["correct"], (r["verdict"], r.get("reason"))
