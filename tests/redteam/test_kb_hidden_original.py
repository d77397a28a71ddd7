"""`kopt eval --fit auto` judges a fitted copy of the task; the candidate must not read the
task as the user gave it either (here in the user's project folder, which the jail does not
blank: kopt's own checkout is bound back)."""
from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kopt.sandboxes.jail_probe import jail_features

TASK = """
import torch
import torch.nn as nn

N = 4096

class Model(nn.Module):
    def forward(self, a, b):
        return a @ b

def get_inputs():
    return [torch.randn(N, N), torch.randn(N, N)]

def get_init_inputs():
    return []
"""

# the path is encoded so no static rule sees it: only the jail stands in the way
SOLUTION = """
import base64
import torch.nn as nn

def _peek(path):
    try:
        return open(base64.b64decode(path).decode()).read()
    except OSError:
        return ""

LEAK = [p for p in {paths!r} if "get_inputs" in _peek(p)]

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        if LEAK:
            raise RuntimeError(f"read {{len(LEAK)}} task file(s)")

    def forward(self, a, b):
        return a @ b
"""


def test_eval_fit_hides_the_original_task():
    if jail_features() is None:
        pytest.skip("no jail on this machine (`kopt doctor`: jail no)")
    # a folder of the user's project (kopt's checkout, whose tests folder the jail binds back)
    suite = Path(__file__).resolve().parent / f".kopt-rt-{secrets.token_hex(6)}"
    suite.mkdir()
    try:
        task = suite / "task.py"
        task.write_text(TASK)
        encoded = [base64.b64encode(str(task).encode()).decode()]
        sol = suite / "sol.py"
        sol.write_text(SOLUTION.format(paths=encoded))
        r = subprocess.run([sys.executable, "-m", "kopt.agent.cli.app", "eval", str(task), str(sol), "--json",
                            "--trials", "2", "--fit", "auto"], capture_output=True, text=True, timeout=600)
        res = json.loads(r.stdout)
    finally:
        shutil.rmtree(suite, ignore_errors=True)
    assert res["checks"].get("fit"), "the task was not fitted: the test checks nothing"
    assert res["verdict"] in ("faster", "same", "slower"), res.get("reason")
