"""rt12: the CUDA resolver's "is this function defined" regex is quadratic in the text.

Attack: a solution under the 1 MiB source cap (1,000,2xx characters) whose load_inline has
`cuda_sources = "f(" * 500_000` and `functions=["f"]`. cuda_sources._defined runs
`\\bf\\s*\\([^;{}]*\\)[^;{}()]*\\{` over it: each of the 500,000 `f(` starts scans to the end of the
text for a `)` that never comes.

Measured: extract_cuda on 10/20/40 kB of such text took 0.18/0.48/2.5 s (quadratic); at 1 MB
that is ~26 min of kopt's own process per name in `functions` (a list of 100 names: ~43 h),
in `kopt eval --compile-only` (and --nvcc-filter) before any sandbox or nvcc is involved.
Here the evaluation is killed after 20 s without a verdict.

Root cause: sandboxes/cuda_sources.py `_defined` (called from `_from_load_inline` for each
name) runs a backtracking pattern over candidate-chosen text; neither the 1 MiB cap
(evaluator._scanned) nor MAX_BUILT_CHARS bounds the work, only the text's size.
Fix idea: find each `name(` occurrence with str.find and scan forward linearly to its
matching `)` and the next `{`/`;` (bounded number of occurrences and characters), or cap the
text `_defined` searches and the number of names.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TASK = Path("/work/shared/kernelbench/level1/19_ReLU.py")

SOLUTION = '''import torch
from torch.utils.cpp_extension import load_inline

ext = load_inline("rt12", cpp_sources="", cuda_sources="''' + "f(" * 500_000 + '''", functions=["f"])


class ModelNew(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x)
'''

RUN = '''import sys
from kopt.sandboxes.evaluator import EvalConfig, evaluate
r = evaluate(sys.argv[1], sys.argv[2], EvalConfig(compile_only=True))
print("VERDICT", r["verdict"])
'''


@pytest.mark.skipif(not TASK.exists(), reason="needs the upstream KernelBench tasks")
def test_compile_only_answers_quickly(tmp_path):
    sol = tmp_path / "sol.py"
    sol.write_text(SOLUTION)
    assert len(SOLUTION) < 1 << 20
    try:
        out = subprocess.run([sys.executable, "-c", RUN, str(TASK), str(sol)], capture_output=True, text=True,
                             timeout=20).stdout
    except subprocess.TimeoutExpired:
        pytest.fail("kopt gave no verdict in 20 s")
    assert "VERDICT" in out
