"""Red team 26: a task whose forward updates one of its inputs in place (a step counter).

The inputs arrive as views of a MAP_PRIVATE mapping of the sealed memfd (sealed_inputs.map_inputs);
the forward's in-place update writes into that mapping. Whatever later "decodes the call's inputs
again" from `worker.mapped` gets the updated values, not the ones that arrived:
- the float64 second opinion (reference_error.second_opinion, "decoded again: a forward may write
  into its own") reruns the reference on the updated counter, its answer moves by 50%, and the
  accurate candidate of an ill-conditioned task gets no second opinion;
- the repeat pass (harness.Worker.cmd_repeat) refills the candidate's inputs from its own
  updated mapping, so even the reference's own code, as the candidate, is `incorrect`.
(second_opinion also reuses its decoded sets for every call it judges -- the repeat pass judges
each call again -- and `.double()`/`.to()` copy nothing of an integer or float64 input.)
Fixed: the worker keeps the sealed memfd; the repeat pass and the float64 rerun read the
inputs again from it (`harness_support.pristine_inputs`)."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")

from kopt.sandboxes.evaluator import EvalConfig, evaluate  # noqa: E402

# written for this test: a row sum scaled by a step counter the forward advances in place; the
# ill-conditioned rows are those of tests/sandboxes/test_reference_error.py (float32 ~50 off ~1e4)
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x, step):
        step.add_(1)
        return x.sum(dim=1, keepdim=True) * step


def get_inputs():
    n = 200000
    {rows}
    return [x, torch.ones(1, dtype=torch.long)]


def get_init_inputs():
    return []
'''
PLAIN = "x = torch.randn(4, n)"
ILL_CONDITIONED = ("x = torch.full((4, n), 1.0e4)\n    x[:, 1::2] = -1.0e4\n    x += 100 * torch.randn(4, n)")
# the same counter, the sum taken in float64: nearer the exact answer than the reference
ACCURATE = '''
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x, step):
        step.add_(1)
        return x.double().sum(dim=1, keepdim=True).float() * step
'''
CFG = dict(rounds=3, max_timing_s=1, trials=2, quality_seeds=2, confirm=False)


def _evaluate(tmp_path, task: str, solution: str) -> dict:
    (tmp_path / "task.py").write_text(task)
    (tmp_path / "sol.py").write_text(solution)
    return evaluate(tmp_path / "task.py", tmp_path / "sol.py", EvalConfig(**CFG))


def test_the_reference_itself_is_correct_on_a_task_that_updates_its_input(tmp_path):
    task = TASK.format(rows=PLAIN)
    r = _evaluate(tmp_path, task, task.replace("class Model(", "class ModelNew("))
    assert r["correct"], (r["verdict"], r.get("reason"))


def test_an_accurate_candidate_of_a_task_that_updates_its_input_gets_the_second_opinion(tmp_path):
    r = _evaluate(tmp_path, TASK.format(rows=ILL_CONDITIONED), ACCURATE)
    assert r["checks"].get("float64_reference", 0) >= 1, (r["verdict"], r.get("reason"))
    assert r["correct"], (r["verdict"], r.get("reason"))
