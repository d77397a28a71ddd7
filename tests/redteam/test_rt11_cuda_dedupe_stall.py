"""rt11: the CUDA source resolver's de-duplication is unbounded work in kopt's own process.

Attack: a solution whose strings the bounded resolver (sandboxes/cuda_sources._Strings)
resolves cheaply -- each name once, a few steps -- but whose module holds 3 `load_inline`
calls on one 3 MiB `__global__` string S and 100,000 aliases `a_i = T` of another 2 MiB
`__global__` string T (built from two 64 KiB literals by f-strings; 1.4 MB of source).
`extract_cuda`'s last loop asks, for every module-level name, `text in u.source` for every
unit found so far: 100,000 x 3 substring searches of a 2 MiB needle in a 3 MiB haystack,
~9 ms each here, all in kopt's process before nvcc or any sandbox starts.

Before (measured, 2-core machine): `extract_cuda` alone took 27.8 s for 1,000 aliases
(3,000 searches), 27.1 s for 30 calls x 100 aliases; at 100,000 aliases that is ~46 min of
one core; `kopt eval --compile-only` (and `kopt optimize`, whose default EvalConfig has
nvcc_filter=True on a machine with nvcc and no GPU) did not return within the test's 60 s.

Root cause: sandboxes/cuda_sources.py extract_cuda, the final loop over
`strings.names` (`not any(text in u.source for u in out.units)`): MAX_RESOLVE_STEPS and
MAX_RESOLVED_CHARS bound resolving, not this comparison, whose cost is
names x units x size.
Fix: compare by identity or by a hash of each resolved text (a set of the units' sources),
skip names whose value is a bare alias of another name, and bound the total characters
compared (or the number of text units) like the resolver's steps.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASK = os.path.join(ROOT, "benchmarks", "examples", "relu_task.py")


def _solution() -> str:
    lines = ["import torch", "import torch.nn as nn", "from torch.utils.cpp_extension import load_inline",
             'b0 = "' + "b" * 65536 + '"', 'c0 = "' + "c" * 65536 + '"',
             'B = f"' + "{b0}" * 32 + '"', 'C = f"' + "{c0}" * 16 + '"',
             'S = f"__global__ void k(){{}}{B}{C}"', 'T = f"__global__ void q(){{}}{C}{C}"']
    lines += [f'ext{i} = load_inline("e{i}", "", S)' for i in range(3)]
    lines += [f"a{i} = T" for i in range(100_000)]
    lines += ["", "class ModelNew(nn.Module):", "    def forward(self, x):", "        return torch.relu(x)", ""]
    return "\n".join(lines)


def test_compile_only_returns_on_many_aliases(tmp_path):
    sol = tmp_path / "sol.py"
    sol.write_text(_solution())
    code = ("from kopt.sandboxes.evaluator import EvalConfig, evaluate\n"
            f"r = evaluate({TASK!r}, {str(sol)!r}, EvalConfig(device='cpu', compile_only=True, setup_timeout_s=20))\n"
            "print('VERDICT', r['verdict'])\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("kopt eval --compile-only still busy after 60 s (the resolver's de-duplication)")
    assert "VERDICT" in out, out[-2000:]


def test_the_resolver_compares_each_text_once_under_the_source_cap():
    """The same shape under the 1 MiB source cap (20,000 aliases, 0.3 MB): 60,000 substring
    searches of a 2 MiB needle before the fix (minutes); each distinct text once after it."""
    import time

    from kopt.sandboxes.cuda_sources import extract_cuda
    from kopt.sandboxes.evaluator import MAX_SOLUTION_CHARS

    source = _solution().replace("\n".join(f"a{i} = T" for i in range(20_000, 100_000)) + "\n", "")
    assert len(source) < MAX_SOLUTION_CHARS and source.count(" = T\n") == 20_000
    t0 = time.process_time()
    out = extract_cuda(source)
    took = time.process_time() - t0
    assert took < 20, took
    # the three load_inline units, and T once (its 20,000 names add nothing)
    assert [u.kind for u in out.units] == ["load_inline"] * 3 + ["text"], [(u.kind, u.origin) for u in out.units]
