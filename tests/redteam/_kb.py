"""Helpers for the red-team tests of `kopt eval`: evaluate a hostile solution written inline
(or a copy of an upstream KernelBench task, read in place and shrunk) and check the contract."""
from __future__ import annotations

import re
from pathlib import Path

from kopt.sandboxes.evaluator import EvalConfig, evaluate

KERNELBENCH = Path(__file__).resolve().parents[3] / "shared" / "kernelbench"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAST = {"max_timing_s": 2, "rounds": 3, "call_timeout_s": 30, "setup_timeout_s": 120, "quality_seeds": 3}
VERDICTS = {"faster", "same", "slower", "incorrect", "compile_error", "runtime_error", "timeout",
            "rejected", "unverified"}
_ASSIGN = re.compile(r"^((?:[A-Za-z_]\w*\s*=\s*)+)(\d+)(\s*(?:#.*)?)$")


def run(task: Path, solution: Path, **cfg) -> dict:
    """evaluate() with small budgets; the result must be a well-formed `kopt eval --json` dict."""
    res = evaluate(task, solution, EvalConfig(**{**FAST, **cfg}))
    assert res["verdict"] in VERDICTS, res
    if res["verdict"] not in ("faster", "same", "slower"):
        assert res.get("reason") and "\n" not in res["reason"], res
    return res


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def relu_task(rows: int, cols: int) -> str:
    """The smallest KernelBench task: ReLU of one (rows, cols) input; for attacks whose point
    is the sandbox, not the kernel."""
    return (f"import torch\nimport torch.nn as nn\n\n\nclass Model(nn.Module):\n    def forward(self, x):\n"
            f"        return torch.relu(x)\n\n\ndef get_inputs():\n    return [torch.randn({rows}, {cols})]\n\n\n"
            f"def get_init_inputs():\n    return []\n")


def shrink(source: str, sizes: dict[str, int]) -> str:
    """A task's module-level size literals set to `sizes` (chained `h = w = 256` included)."""
    out = []
    for line in source.splitlines():
        m = _ASSIGN.match(line)
        names = re.findall(r"([A-Za-z_]\w*)\s*=", m.group(1)) if m else []
        hit = [n for n in names if n in sizes]
        out.append(f"{m.group(1)}{sizes[hit[0]]}{m.group(3)}" if hit else line)
    return "\n".join(out) + "\n"


def as_solution(task_source: str) -> str:
    """A plain copy of a task's reference as ModelNew (what `kernelbench_copies` evaluates)."""
    return re.sub(r"\bModel\b", "ModelNew", task_source)


def world_readable() -> Path:
    """A folder the sandboxed worker (which may run as another user) can read: pytest's own
    tmp folders are private to the user running the tests."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="kopt-redteam-"))
    d.chmod(0o755)
    return d
