"""`kopt optimize --plan`: a fixed plan drives the rules coder; a step that does not apply is a
no-op in the run (plan.json, the terminal), not an error; applied steps are evaluated."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import kopt_here
from tests.support.fast_config import fast_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tasks"
ACTIVATIONS = """import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x * 0.5
        x = torch.sigmoid(x)
        x = x + 1.0
        return x


def get_inputs():
    return [torch.randn(64, 4096)]


def get_init_inputs():
    return []
"""


def kopt(*args: str | Path, env: dict) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("kopt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "kopt.agent.cli.app"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=600, env=env)


def test_a_bad_plan_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_EVAL_CACHE", str(tmp_path / "c.sqlite"))
    p = kopt_here("optimize", FIXTURES / "linear.py", "--plan", "cpu-fuse-elementwise-chain(fast)", "--fit", "none",
                  "--run-dir", tmp_path / "run")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "name=value" in p.stderr


def test_plan_and_planner_need_the_rules_coder(tmp_path):
    p = kopt_here("optimize", FIXTURES / "linear.py", "--model", "openai/x", "--plan", "cpu-fuse-elementwise-chain",
                  "--fit", "none", "--run-dir", tmp_path / "run")
    assert p.returncode == 2 and "--model rules" in p.stderr


@pytest.mark.slow
def test_plan_with_a_noop_step_runs_and_reports_it(tmp_path):
    env = dict(os.environ, KOPT_EVAL_CACHE=str(tmp_path / "c.sqlite"), KOPT_CACHE_DIR=str(tmp_path / "kc"))
    run, task = tmp_path / "run", tmp_path / "activations.py"
    task.write_text(ACTIVATIONS)
    p = kopt("optimize", task, "--plan", "cpu-fuse-norm-epilogue; cpu-fuse-elementwise-chain",
             "--fit", "none", "--budget", "2", "--run-dir", run, "--json", "--config", fast_config(tmp_path), env=env)
    assert p.returncode in (0, 1), p.stderr
    plan = json.loads((run / "plan.json").read_text())
    assert [s["status"] for s in plan["steps"]] == ["no-op", "applied"]
    assert "GroupNorm" in plan["steps"][0]["reason"]
    assert json.loads(p.stdout)["plan"][0]["status"] == "no-op"  # the summary carries it (--json: no terminal lines)
    import sqlite3

    steps = [r[0] for r in sqlite3.connect(run / "run.sqlite").execute("SELECT plan_step FROM candidates")]
    assert any(s.startswith("plan step 2 cpu-fuse-elementwise-chain") for s in steps), steps
    stats = json.loads(kopt("runs", "cache", "stats", "--json", env=env).stdout)
    assert stats["measurements"] == 2  # the reference and the plan's candidate, both stored
