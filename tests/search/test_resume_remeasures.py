"""`kopt optimize --resume`: the search's confirmation of its best candidate is a fresh
measurement, not the first process's measurement served again by the evaluation cache.

The sandboxed evaluator is replaced by a stand-in that answers a new speedup on each call
(the real one takes tens of seconds a candidate); the search, the store, the cache and the
resume are kopt's own."""
from __future__ import annotations

import json
from pathlib import Path

from kopt.agent.search.optimize import config_from_kwargs, run_optimize
from kopt.sandboxes import eval_cache

CHAIN = Path(__file__).resolve().parents[2] / "benchmarks" / "examples" / "activation_chain.py"


class Sandbox:
    """The reference measures 1x; every later call a distinct, clearly faster speedup."""

    def __init__(self):
        self.calls = 0

    def __call__(self, task, solution, cfg) -> dict:
        self.calls += 1
        sp = 1.0 if self.calls == 1 else 2.0 + self.calls / 10
        lo, hi = sp * 0.97, sp * 1.03
        return {"verdict": "same" if self.calls == 1 else "faster", "correct": True, "compiled": True,
                "speedup": sp, "speedup_ci": [lo, hi], "reason": "", "checks": {}}


def _config(budget: int):
    cfg = config_from_kwargs(model="rules", budget=budget)
    cfg.search.novelty = "tokens"  # the embedding model's load would be most of the test's time
    return cfg


def test_the_confirmation_after_resume_is_measured(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_EVAL_CACHE", str(tmp_path / "evals.sqlite"))
    sandbox = Sandbox()
    monkeypatch.setattr(eval_cache, "evaluate", sandbox)
    run_dir = tmp_path / "run"
    # budget 2: the reference and the rules' child, no confirmation yet (as if stopped there)
    run_optimize(CHAIN, _config(budget=2), run_dir=run_dir, quiet=True)
    assert sandbox.calls == 2
    summary = run_optimize(CHAIN, _config(budget=3), run_dir=run_dir, resume=True, quiet=True)
    assert sandbox.calls == 3, "the resumed run's confirmation was served from the cache"
    evals = json.loads((run_dir / "best" / "evaluations.json").read_text())
    assert [e["speedup"] for e in evals] == [2.2, 2.3]
    assert evals[1]["checks"]["cache"]["repeat"] is True
    assert summary["verdict"] == "verified improvement"
