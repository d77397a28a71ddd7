"""The torch.compile probe times given solutions in its own rounds (the like-for-like check of
benchmarks/studies/rules_vs_compile.py): a solution that matches the Model gets a speedup
beside the compiler's, one that does not gets its reason, not a number."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")

from kopt.agent.targets.kernelbench.size_probe import run_probe  # noqa: E402

# written for this test: a shifted softplus over a small batch
TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.nn.functional.softplus(x) - 0.5


def get_inputs():
    return [torch.randn(64, 256)]


def get_init_inputs():
    return []
'''
SAME = TASK.replace("class Model(", "class ModelNew(").replace("softplus(x) - 0.5", "softplus(x).sub_(0.5)")
WRONG = TASK.replace("class Model(", "class ModelNew(").replace("- 0.5", "- 0.25")


def test_solutions_are_timed_beside_the_compiler(tmp_path):
    path = tmp_path / "task.py"
    path.write_text(TASK)
    res = run_probe({"kind": "compile", "source": TASK, "path": str(path), "device": "cpu",
                     "solutions": {"same": SAME, "wrong": WRONG}}, 1, 600)
    if res.get("skipped"):
        pytest.skip(f"torch.compile does not run here: {res['skipped']}")
    assert res["correct"] and res["speedup"] > 0, res
    assert res["solutions"]["same"]["speedup"] > 0 and res["solutions"]["same"]["ms"] > 0, res
    assert "speedup" not in res["solutions"]["wrong"] and "not close" in res["solutions"]["wrong"]["error"], res
