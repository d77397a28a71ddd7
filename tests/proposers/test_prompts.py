"""What the model is told: feedback per evaluation, the task context, the multi-turn lineage
and the prompt token budget (kopt.agent.proposers.prompting.feedback, task_context, coder.build_messages)."""
from __future__ import annotations

from pathlib import Path

import pytest

from kopt.agent.core import Candidate
from kopt.agent.proposers.llm_proposer import build_messages, message_tokens
from kopt.agent.proposers.prompting.feedback import describe

FIXTURES = Path(__file__).parents[1] / "fixtures"
RELU_TASK = FIXTURES / "kb" / "relu_task.py"
BAD_CPP = '''import torch
from kopt.sandboxes.native import load_cpp

SOURCE = r"""
#include <cstdint>
extern "C" void relu(const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f
}
"""
_lib = load_cpp(SOURCE)
'''
COMPILE_ERROR = {"verdict": "compile_error", "correct": False, "checks": {},
                 "reason": "/root/.cache/kopt/sbx/1/native/2/src.cpp:4:69: error: expected ';' before '}' token"}
MISMATCH = {"verdict": "incorrect", "correct": False, "reason": "trial 2: out: values differ (max abs err 0.037)",
            "checks": {"mismatch": {"trial": "trial 2", "shapes": [[16, 256]], "dist": "signs flipped",
                                    "max_abs_err": 0.037, "max_rel_err": 0.01,
                                    "samples": [[88, 3.7041, 3.7412], [2459, 3.404, 3.438]]}}}
SLOW = {"verdict": "slower", "correct": True, "speedup": 0.5, "speedup_ci": [0.45, 0.55], "ref_ms": 1.0,
        "new_ms": 2.0, "reason": "slower than the reference", "checks": {}}


def test_compiler_error_names_the_line_of_the_solution():
    text = describe(COMPILE_ERROR, BAD_CPP)
    assert "expected ';' before '}' token" in text and "reason: src.cpp:4:69" in text and "/root" not in text
    assert "line 7 of your solution: for (int64_t i = 0" in text


def test_compiler_excerpt_is_found_in_the_solution():
    out = ("main.cpp:9:5: error: 'foo' was not declared in this scope\n    9 |     foo(x);\n      |     ^~~\n"
           "main.cpp:12:1: error: expected '}'")
    code = "import torch\nSRC = '''\nint f(float* x) {\n    foo(x);\n'''\n"
    text = describe({"verdict": "compile_error", "reason": "x", "checks": {"error_detail": out}}, code)
    assert "line 4 of your solution: foo(x);" in text and "expected '}'" in text


def test_mismatch_runtime_and_rejected_details():
    wrong = describe(MISMATCH)
    assert "trial 2" in wrong and "[[16, 256]]" in wrong and "signs flipped" in wrong
    assert "max abs error 0.037" in wrong and "[88]: 3.7041 vs 3.7412" in wrong
    crash = describe({"verdict": "runtime_error", "reason": "RuntimeError: bad view", "checks": {
        "error_detail": 'File "/tmp/x/sol.py", line 6, in helper\n    return x.view(-1, 7)\nRuntimeError: bad'}})
    assert "line 6, in helper" in crash and "x.view(-1, 7)" in crash
    rejected = describe({"verdict": "rejected", "reason": "reads the reference task: /tmp/task.py", "checks": {}})
    assert "must not open or import the task file" in rejected
    slow = describe(SLOW | {"checks": {"memory_floor_ms": 0.5, "profile": [{"op": "aten::clone", "ms": 1.5,
                                                                            "share": 0.75, "calls": 20}]}})
    assert "speedup 0.50x (95% CI 0.45-0.55)" in slow and "1.000 ms vs this 2.000 ms" in slow
    assert "takes 4.0x that" in slow and "aten::clone" in slow and "75.0%" in slow


def test_program_targets_get_only_the_reason():
    text = describe({**MISMATCH, "reason": "test 3: wrong answer"}, checks=False)
    assert "test 3: wrong answer" in text and "3.7041" not in text and "shapes" not in text


def _lineage():
    root = Candidate(code="class ModelNew: pass  # ROOT\n", plan_step="reference", id="root")
    a = Candidate(code="class ModelNew: pass  # A\n", parent_ids=["root"], plan_step="fuse", completion="ANSWER-A",
                  id="a")
    b = Candidate(code="class ModelNew: pass  # B\n", parent_ids=["a"], plan_step="vectorise", completion="ANSWER-B",
                  id="b")
    c = Candidate(code=BAD_CPP, parent_ids=["b"], plan_step="port to C++", completion="ANSWER-C", id="c")
    evals = {"root": [{"verdict": "same", "speedup": 1.0}], "a": [SLOW], "b": [MISMATCH | {"verdict": "faster",
                                                                                          "correct": True}],
             "c": [COMPILE_ERROR]}
    return {x.id: x for x in (root, a, b, c)}, evals


def _context(**kw):
    cands, evals = _lineage()
    return {"task_source": "class Model: pass  # TASK", "parent": cands["b"], "parent_results": evals["b"],
            "lessons": "LESSON " * 50, "candidates": cands, "evaluations": evals,
            "task_context": {"hardware": "CPU: HW-LINE", "profile": "aten::relu 100%", "example": "EXAMPLE " * 200},
            **kw}


def test_lineage_is_a_conversation():
    messages = build_messages(_context(), "use OpenMP")
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in messages if m["role"] == "assistant"] == ["ANSWER-A", "ANSWER-B", "ANSWER-C"]
    joined = "\n".join(m["content"] for m in messages)
    assert joined.count("# TASK") == 1 and joined.count("HW-LINE") == 1  # the task context once per lineage
    assert "Plan step: fuse" in messages[1]["content"] and "HW-LINE" in messages[1]["content"]
    assert "speedup 0.50x" in messages[3]["content"]  # what happened to ANSWER-A follows it
    final = messages[-1]["content"]
    assert "line 7 of your solution" in final and "not built on" in final  # the failed attempt from the parent
    assert "# B" in final and "use OpenMP" in final


def test_budget_drops_history_first_and_never_the_task_or_code():
    full = build_messages(_context(), "use OpenMP")
    tight = build_messages(_context(), "use OpenMP", max_prompt_tokens=message_tokens(full) - 10)
    contents = [m["content"] for m in tight]
    assert "ANSWER-A" not in contents and "ANSWER-C" in contents  # oldest attempt first
    smallest = build_messages(_context(), "use OpenMP", max_prompt_tokens=1)
    assert len(smallest) == 2
    text = smallest[-1]["content"]
    assert "# TASK" in text and "# B" in text and "use OpenMP" in text
    assert "LESSON" not in text and "EXAMPLE" not in text and "ANSWER" not in text


def test_plan_prompt_has_the_history_and_asks_for_a_plan():
    messages = build_messages(_context(), None)
    assert "Plan only" in messages[-1]["content"] and "ANSWER-B" in [m["content"] for m in messages]


def test_example_solution_is_correct_under_the_evaluator(tmp_path):
    pytest.importorskip("torch")
    from kopt.agent.proposers.prompting.prompt_examples import EXAMPLES
    from kopt.sandboxes.evaluator import EvalConfig, evaluate

    sol = tmp_path / "example.py"
    sol.write_text(EXAMPLES["cpu"])
    r = evaluate(RELU_TASK, sol, EvalConfig(rounds=3, max_timing_s=2))
    assert r["correct"] is True and r["compiled"] is True, r.get("reason")


def test_reference_profile_in_a_child_process(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from kopt.agent.proposers.prompting import task_context as tc

    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path))
    info = tc.reference_profile(RELU_TASK, "cpu")
    assert "error" not in info, info
    assert any(r["op"] in ("aten::relu", "aten::clamp_min") for r in info["ops"]) and info["wall_ms"] > 0
    assert info["io_bytes"] == 2 * 16 * 256 * 4
    assert tc.reference_profile(RELU_TASK, "cpu") == info  # cached per task
    assert list(tmp_path.glob("profiles/*.json"))
    text = tc.describe_profile(info, bandwidth_gbs=10.0)
    assert "aten::" in text and "bound:" in text
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\nclass Model(torch.nn.Module):\n    def forward(self, x):\n        return x\n"
                      "def get_inputs():\n    raise ValueError('no inputs here')\ndef get_init_inputs():\n"
                      "    return []\n")
    assert "no inputs here" in tc.reference_profile(broken, "cpu")["error"]


def test_lessons_tell_slow_from_fast_and_drop_sandbox_paths():
    from kopt.agent.search.summarizer import summarize

    cands = {k: Candidate(code="", plan_step=f"step {k}", id=k) for k in ("fast", "slow", "broken")}
    evals = {"fast": [{"verdict": "faster", "correct": True, "speedup": 2.0}], "slow": [SLOW],
             "broken": [COMPILE_ERROR]}
    text = summarize(cands, evals, {})
    assert "WORKED (2.00x): step fast" in text and "CORRECT BUT NOT FASTER (0.50x): step slow" in text
    assert "src.cpp:4:69: error" in text and "/root" not in text
