"""`kopt train --planner` end to end on a tiny policy built from a config, and the trained
folder used as `kopt optimize --planner hf:DIR` (real sandboxed evaluations: slow)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kopt.rl_finetune.planner import PlanTask

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tasks"


def kopt(*args: str | Path, env: dict) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("kopt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "kopt.agent.cli.app"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=1200, env=env)


def test_planner_needs_tasks_not_runs(tmp_path):
    p = kopt("train", "--planner", "--model", f"hf:{tmp_path}", "--from-runs", tmp_path, "--run-dir",
             tmp_path / "out", env=dict(os.environ))
    assert p.returncode == 2 and "--planner trains on --tasks" in p.stderr
    p = kopt("train", "--model", f"hf:{tmp_path}", "--tasks", tmp_path, "--imitate-steps", "5", "--run-dir",
             tmp_path / "out", env=dict(os.environ))
    assert p.returncode == 2 and "add --planner" in p.stderr


@pytest.mark.slow
def test_train_a_planner_then_plan_with_it(tmp_path):
    pytest.importorskip("transformers")
    from kopt.rl_finetune.planner import planner_model, planner_tokenizer

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    shutil.copy(FIXTURES / "linear.py", tasks / "1_linear.py")
    tok = planner_tokenizer([PlanTask.from_path(tasks / "1_linear.py")])
    model = planner_model(tok, hidden=32)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    env = dict(os.environ, KOPT_EVAL_CACHE=str(tmp_path / "c.sqlite"), KOPT_CACHE_DIR=str(tmp_path / "kc"))
    out = tmp_path / "planner"
    p = kopt("train", "--planner", "--model", f"hf:{tmp_path / 'model'}", "--tasks", tasks, "--steps", "1",
             "--group-size", "2", "--prompts-per-step", "1", "--max-new-tokens", "4", "--lora-r", "0",
             "--imitate-steps", "3", "--jobs", "1", "--run-dir", out, "--json", env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    summary = json.loads(p.stdout)
    assert summary["steps"] == 1 and summary["prompts"] == 1
    run = tmp_path / "run"
    p = kopt("optimize", tasks / "1_linear.py", "--planner", f"hf:{out}", "--fit", "none", "--budget", "2",
             "--run-dir", run, "--json", env=env)
    assert p.returncode in (0, 1), p.stderr[-2000:]
    plan = json.loads((run / "plan.json").read_text())
    assert plan["planner"] == f"hf:{out}" and plan["steps"]
