"""Never slower (issue 20 item 2): `kopt optimize` returns a candidate only when it is verified
faster; otherwise best/ is the reference, the verdict says so and the exit code is 1."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kopt.agent.core import Candidate
from kopt.agent.runs.store import Store
from kopt.agent.search.estimate import verified_faster
from kopt.agent.search.loop import Search, SearchConfig
from kopt.agent.targets.kernelbench.kernelbench_target import reference_solution
from tests.support.fast_config import fast_config

GAP, FLOOR = 0.3, 0.1


def ev(speedup: float, verdict: str | None = None, correct: bool = True) -> dict:
    lo = speedup * 0.95
    verdict = verdict or ("faster" if lo > 1 + FLOOR else "same")
    return {"verdict": verdict, "correct": correct, "speedup": speedup, "speedup_ci": [lo, speedup * 1.05]}


def test_verified_faster_pools_the_evidence_and_an_outlier_undoes_a_lucky_one():
    assert verified_faster([ev(1.3)], FLOOR, GAP)
    assert not verified_faster([ev(1.1)], FLOOR, GAP)  # within the noise floor
    assert verified_faster([ev(1.3), ev(1.2)], FLOOR, GAP)  # a 'same' at 1.2x does not undo 1.3x
    assert not verified_faster([ev(2.5), ev(0.9)], FLOOR, GAP)  # the 2.5x was the outlier
    assert not verified_faster([ev(1.5), ev(1.5, "incorrect", correct=False)], FLOOR, GAP)
    assert not verified_faster([], FLOOR, GAP)


TASK = ("import torch\n\n\nclass Model(torch.nn.Module):\n    def forward(self, x):\n"
        "        return torch.sort(x, dim=-1)[0]\n\n\ndef get_inputs():\n    return [torch.randn(4, 8)]\n\n\n"
        "def get_init_inputs():\n    return []\n")


class OneChild:
    """Proposes one rewrite of the reference, then nothing."""

    name = "one-child"

    def propose(self, context):
        parent = context["parent"]
        if parent.parent_ids:
            return []
        return [Candidate(code=parent.code + "\n# rewritten\nREWRITE = 1\n", parent_ids=[parent.id], plan_step="x")]


def test_search_answers_the_reference_when_the_only_candidate_is_not_verified_faster(tmp_path):
    task = tmp_path / "task.py"
    task.write_text(TASK)
    measured = iter([1.0, 1.08, 1.05, 1.02])  # the reference, then the child: correct, about as fast

    def evaluator(task_path, solution, cfg):
        return ev(next(measured))

    s = Search(task, OneChild(), Store(":memory:"), "r", tmp_path, SearchConfig(budget=4, novelty="tokens"),
               evaluator=evaluator)
    assert s.run() is None  # the reference stands
    child = s.best_correct()
    assert child is not None and s.cands[child].parent_ids and not s.faster(child)


def test_optimize_with_rules_leaves_the_reference_and_exits_1_when_nothing_is_faster(tmp_path):
    task = tmp_path / "sort_task.py"
    task.write_text(TASK)
    run = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "kopt.agent.cli.app", "optimize", str(task), "--model", "rules",
                        "--budget", "3", "--fit", "none", "--run-dir", str(run), "--json",
                        "--config", str(fast_config(tmp_path))],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 1, p.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["verdict"] == "no verified improvement" and summary["returned"] == "reference"
    assert summary["best"] is None and summary["best_speedup"] is None
    assert (run / "best" / "solution.py").read_text() == reference_solution(TASK)
    assert "No verified improvement" in (run / "report.md").read_text()
    assert Path(run / "best" / "evaluations.json").exists()
