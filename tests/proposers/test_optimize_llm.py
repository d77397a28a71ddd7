"""`kopt optimize` end to end with the openai/ backend against a real HTTP server on
127.0.0.1: plan, code, sandboxed evaluation, store, report, TRL export."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("openai")
pytest.importorskip("torch")

from kopt.agent.runs.store import Store  # noqa: E402
from kopt.agent.search.optimize import run_optimize  # noqa: E402
from kopt.rl_finetune.export import trl_rows  # noqa: E402
from kopt.rl_finetune.rewards import reward  # noqa: E402
from kopt.sandboxes.evaluator import EvalConfig  # noqa: E402
from tests.support.chat_server import ChatServer  # noqa: E402

TASK = Path(__file__).resolve().parents[2] / "benchmarks" / "examples" / "activation_chain.py"
PLAN = "1. compute sigmoid with torch.special.expit\n2. fuse the chain"
EDIT = ("<<<<<<< SEARCH\n        x = torch.sigmoid(x)\n=======\n        x = torch.special.expit(x)\n"
        ">>>>>>> REPLACE")


def test_optimize_with_an_openai_compatible_server(tmp_path):
    def script(body, n):
        last = body["messages"][-1]["content"]
        return 200, (PLAN if "Plan only" in last else EDIT), 0

    with ChatServer(script) as srv:
        summary = run_optimize(TASK, model="openai/tiny", base_url=srv.url, budget=3, run_dir=tmp_path / "run",
                               quiet=True, eval_cfg=EvalConfig(max_timing_s=2, rounds=5))
    # the reference and the edit; the same edit again is a duplicate (no evaluation), and nothing faster to confirm
    assert 2 <= summary["evaluations"] <= 3 and summary["best_candidate"], summary
    store = Store.open_run_dir(tmp_path / "run")
    llm = [c for c in store.candidates() if c.proposer.get("model") == "openai/tiny"]
    assert llm and "torch.special.expit" in llm[0].code and llm[0].plan_step.startswith("compute sigmoid")
    results = [e.result for e in store.evaluations() if e.candidate_id == llm[0].id]
    assert results and results[0]["correct"] is True
    rows = trl_rows(store)
    # a correct proposal's reward is architecture §8's speed reward (it can sit below 0.1 when it is slower)
    assert rows and rows[0]["prompt"] and rows[0]["completion"] == [{"role": "assistant", "content": EDIT}]
    assert rows[0]["reward"] == pytest.approx(sum(reward(r) for r in results) / len(results))
    report = (tmp_path / "run" / "report.md").read_text()
    assert "openai/tiny" in report and "Lineage" in report
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["model"] == "openai/tiny"
    assert (tmp_path / "run" / "best" / "solution.py").exists()
