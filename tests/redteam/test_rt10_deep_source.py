"""rt10: a solution whose source is too deep for Python's parser crashes `kopt eval`.

Attack: a syntactically valid solution with one very long expression (`y = x+x+...` 200 000
terms, or 100 000 unary minus signs) -- a file any model can emit by looping.
Before: `evaluate()` raised RecursionError ("maximum recursion depth exceeded during ast
construction") / MemoryError from `static_scan.scan`; `kopt eval` printed a traceback and
exited 1 instead of a one-line verdict (architecture §1: "a user error is never a traceback";
§4: "nothing a candidate sends can crash kopt").
Root cause: `static_scan.kernel_kind` catches only SyntaxError/ValueError around `ast.parse`
and `scan` only SyntaxError; `evaluate` itself only catches SyntaxError around `compile`.
Fix: catch RecursionError and MemoryError (any Exception) from ast.parse/compile of the
solution in scan/evaluate and return `compile_error` ("solution too deeply nested to parse").
"""
from __future__ import annotations

from pathlib import Path

import pytest

from kopt.sandboxes.evaluator import EvalConfig, evaluate

TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "relu.py"
HEAD = ("import torch\n\n\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n"
        "        return torch.relu(x)\n\n\n")


@pytest.mark.parametrize("tail", ["y = " + "+".join(["x"] * 200_000) + "\n", "y = " + "-" * 100_000 + "1\n"],
                         ids=["long_sum", "unary_chain"])
def test_deep_source_is_a_verdict(tmp_path: Path, tail: str) -> None:
    sol = tmp_path / "sol.py"
    sol.write_text(HEAD + tail)
    res = evaluate(TASK, sol, EvalConfig(max_timing_s=2, rounds=3, call_timeout_s=30, setup_timeout_s=60))
    assert res["verdict"] in ("compile_error", "rejected", "runtime_error"), res
    assert not res["correct"]
