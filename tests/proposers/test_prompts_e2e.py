"""Issue 23's check: `kopt optimize` against a scripted OpenAI-compatible server on loopback
(a plan, C++ that does not compile, a wrong answer, a slow one, a reasoning-style answer). The
requests kopt sends afterwards carry the compiler's error on the solution's own line, the
mismatch, the speedup, the reference's profile and the hardware, and the candidate evaluated
from the reasoning-style answer is its final file, not the draft."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("openai")
pytest.importorskip("torch")

from benchmarks.studies.prompt_quality import MARKS, run  # noqa: E402

TASK = Path(__file__).parents[1] / "fixtures" / "kb" / "relu_task.py"


def test_requests_carry_what_the_model_needs(tmp_path):
    from kopt.sandboxes.evaluator import EvalConfig

    quick = EvalConfig(rounds=3, max_timing_s=1, trials=2, edge_shapes=False, quality_seeds=2)
    requests, cands = run(tmp_path / "run", TASK, budget=8, eval_cfg=quick)
    code = [r["messages"] for r in requests if "Plan only" not in r["messages"][-1]["content"]]
    assert len(code) >= 4, f"{len(requests)} requests"
    text = ["\n".join(m["content"] for m in msgs) for msgs in code]
    for t in text:  # the task context, once per conversation
        assert t.count(MARKS["profile"]) == 1 and MARKS["hardware"] in t and "aten::relu" in t
    assert MARKS["compiler error"] in text[1] and "error: expected" in text[1]
    assert MARKS["mismatch"] in text[2] and "max abs error" in text[2]
    assert "verdict: slower" in text[3] or "verdict: same" in text[3]  # the slow one's result, with its CI
    assert [m["role"] for m in code[3]].count("assistant") == 3  # the lineage's attempts as turns
    final = [c for c in cands if "<think>" in c.completion]
    assert final and "# FINAL" in final[0].code and "DRAFT" not in final[0].code
    llm = [c for c in cands if c.completion]
    assert all(c.proposer["prompt_tokens"] and c.proposer["prompt_tokens"][-1] > 0 for c in llm)
