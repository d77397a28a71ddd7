"""rt10: a CUDA solution whose kernel string "expands" to 100 GB crashes `kopt eval --compile-only`.

Attack: the solution holds one 100 kB string constant B0 and two module-level names
`B1 = "".join([B0, B0, ... 1000 times])`, `B2 = "".join([B1, ... 1000 times])`, plus a
`__global__` kernel string that adds B2 -- 108 kB of source. Where CUDA cannot run (no GPU,
`--compile-only`, or a search's `nvcc_filter`), kopt reads the CUDA out of the syntax tree in
its own process (cuda_sources._Strings.value), which evaluates joins and `+` of names
recursively (depth <= 20, but 3 levels per join: 1000^6 times a constant is reachable).
Before: `kopt eval --compile-only` died with a MemoryError traceback in
cuda_sources._Strings.value (`owner.join(...)` of 100 GB); with sizes that fit in memory
(say 10 GB) it is a memory blow-up of kopt's own process instead (architecture §4: "nothing
a candidate sends can crash kopt, stall it").
Root cause: the static string resolver has a depth limit but no size limit, and runs
unsandboxed in kopt's process; evaluate() does not turn its failure into a verdict.
Fix: bound the resolved string's length in `_Strings.value` (e.g. a running total against
the solution's own size x a small factor, or 1 MB: anything larger is `unresolved`), and
catch MemoryError/RecursionError around extract_cuda as `compile_error` / `unverified`.
"""
from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "relu.py"


def _solution() -> str:
    return (f'import torch\n\nB0 = "{"A" * 100_000}"\n'
            f'B1 = "".join([{", ".join(["B0"] * 1000)}])\n'
            f'B2 = "".join([{", ".join(["B1"] * 1000)}])\n'
            'KERNEL = "__global__ void k(float* x) { }" + B2\n\n\n'
            'class ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return torch.relu(x)\n')


def _cap_memory() -> None:  # 100 GB is refused at once; the cap keeps a smaller expansion harmless too
    resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))


def test_cuda_string_bomb_is_a_verdict(tmp_path: Path) -> None:
    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc: the compile-only path is not taken")
    sol = tmp_path / "bomb.py"
    sol.write_text(_solution())
    run = subprocess.run([sys.executable, "-m", "kopt.agent.cli.app", "eval", str(TASK), str(sol), "--compile-only",
                          "--json"], capture_output=True, text=True, timeout=120, preexec_fn=_cap_memory)
    assert "Traceback" not in run.stderr, run.stderr[-800:]
    res = json.loads(run.stdout)
    assert res["verdict"] in ("compile_error", "unverified", "rejected"), res
