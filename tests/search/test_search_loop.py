"""The search loop: queue, re-evaluation, epsilon-net, budgets, kill -9 and --resume."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from kopt.agent.core import Candidate  # noqa: E402
from kopt.agent.runs.store import Store  # noqa: E402
from kopt.agent.search.loop import Search, SearchConfig, reference_solution  # noqa: E402
from kopt.sandboxes.evaluator import EvalConfig  # noqa: E402
from tests.support.fast_config import fast_config  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "benchmarks" / "examples"
TASK = EXAMPLES / "relu_task.py"
CHAIN = EXAMPLES / "activation_chain.py"
FAST_EVAL = EvalConfig(max_timing_s=2, rounds=5)


class ScriptedProposer:
    """Test policy: a fixed list of children for the reference, nothing afterwards."""

    name = "scripted"

    def __init__(self, codes):
        self.codes, self.calls = codes, 0

    def propose(self, context):
        self.calls += 1
        if context["parent"].parent_ids:
            return []
        return [Candidate(code=c, parent_ids=[context["parent"].id], plan_step=f"step {i}",
                          proposer={"model": "scripted", "tokens_in": 10, "tokens_out": 5, "cost": 0.01})
                for i, c in enumerate(self.codes)]


def run_search(tmp_path, codes, **cfg):
    store = Store.open_run_dir(tmp_path)
    s = Search(TASK, ScriptedProposer(codes), store, "r1", tmp_path,
               SearchConfig(eval=FAST_EVAL, novelty="tokens", **cfg))
    best = s.run()
    return s, best, store


def test_duplicates_cost_no_evaluation_and_failures_are_recorded(tmp_path):
    ref = reference_solution(TASK.read_text())
    broken = "import torch\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return x\n"
    s, best, store = run_search(tmp_path, [ref + "\n# same code, new comment\n", broken], budget=4)
    dup = [c for c in s.cands.values() if c.plan_step == "step 0"][0]
    wrong = [c for c in s.cands.values() if c.plan_step == "step 1"][0]
    assert dup.id in s.duplicates and s.evals[dup.id] == []
    assert s.evals[wrong.id][0]["verdict"] == "incorrect"
    assert best != wrong.id  # (None here: the reference itself is never the best)
    assert len(store.evaluations("r1")) == s.stats.evaluations <= 4  # nothing left to explore: it stops early
    assert s.stats.tokens == 30 and abs(s.stats.cost - 0.02) < 1e-9
    root = next(c for c in s.cands.values() if not c.parent_ids)
    assert "incorrect" in s.context(root)["lessons"]


def test_budget_limits_stop_cleanly(tmp_path):
    s, _, store = run_search(tmp_path, [], budget=2, reevaluate_top=True)  # the reference re-measured: budget spent
    assert s.stop_reason.startswith("evaluation budget spent") and len(store.evaluations()) == 2
    s2, _, _ = run_search(tmp_path / "t", [], budget=50, max_time=0.1)
    assert s2.stop_reason.startswith("time limit") and s2.stats.evaluations <= 1


def _evals(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT id, candidate_id, verdict, speedup FROM evaluations ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def test_kill_9_then_resume_loses_nothing(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "kopt.agent.cli.app", "optimize", str(CHAIN),
           "--run-dir", str(run_dir), "--budget", "4", "--config", str(fast_config(tmp_path))]
    env = dict(os.environ, KOPT_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    db = run_dir / "run.sqlite"
    deadline = time.time() + 240
    while time.time() < deadline and len(_evals(db)) < 2:
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _evals(db)
    assert len(before) >= 2, "the run did not get far enough to be killed mid-way"
    r = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode in (0, 1), r.stderr
    after = _evals(db)
    assert after[: len(before)] == before
    # the budget, or fewer when the search runs out of proposals (the rules have one child
    # here, and kopt eval already times its `faster` verdict on a fresh pair of workers, so no
    # confirming evaluation is owed: the run may be complete at the kill)
    assert len(before) <= len(after) <= 4
    assert (run_dir / "report.md").exists() and (run_dir / "report.html").exists()
    con = sqlite3.connect(db)
    assert con.execute("SELECT status FROM runs").fetchone()[0] == "done"
