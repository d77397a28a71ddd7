"""The budget reserve: the end of a run goes to re-measuring the contenders for best, so a
candidate measured once, luckily, with the last evaluation cannot be crowned (a scripted
landscape; no sandbox, no torch)."""
from __future__ import annotations

from pathlib import Path

from kopt.agent.core import Candidate
from kopt.agent.runs.store import Store
from kopt.agent.search.loop import Search, SearchConfig

TASK = ("import torch\n\nclass Model(torch.nn.Module):\n    def forward(self, x):\n        return x * 2\n\n"
        "def get_inputs():\n    return [torch.randn(4)]\n\ndef get_init_inputs():\n    return []\n")
# name -> successive measured speedups; "lucky" is truly slow but its first measurement is an outlier
MEASUREMENTS = {"ref": [1.0] * 9, "solid": [1.5] * 9, "lucky": [3.0, 0.9, 0.9, 0.9]}
CHILDREN = {"ref": ["solid"], "solid": ["lucky"], "lucky": []}


def name_of(code: str) -> str:
    return code.split("# cand: ")[1].split()[0] if "# cand: " in code else "ref"


class LandscapeProposer:
    name = "landscape"

    def propose(self, context):
        parent = context["parent"]
        return [Candidate(code=code_of(c), parent_ids=[parent.id], plan_step=c) for c in CHILDREN[name_of(parent.code)]]


def code_of(name: str) -> str:
    """Distinct enough that the epsilon-net does not take one candidate for another."""
    return f"# cand: {name}\n" + f"{name} = [{name!r}] * 3  # {name} {name} {name}\n" * 3


def run(tmp_path: Path, **cfg) -> tuple[str, Search]:
    seen: dict[str, int] = {}

    def evaluator(task, solution, eval_cfg):
        name = name_of(Path(solution).read_text())
        k = seen[name] = seen.get(name, 0) + 1
        sp = MEASUREMENTS[name][k - 1]
        return {"verdict": "faster" if sp > 1.1 else "same", "correct": True, "compiled": True, "speedup": sp,
                "speedup_ci": [sp * 0.97, sp * 1.03], "reason": None}

    task = tmp_path / "task.py"
    task.write_text(TASK)
    s = Search(task, LandscapeProposer(), Store(":memory:"), "r", tmp_path,
               SearchConfig(budget=6, novelty="tokens", **cfg), evaluator=evaluator)
    best = s.run()
    return name_of(s.cands[best].code), s


def test_a_lucky_last_measurement_wins_without_the_reserve(tmp_path):
    best, s = run(tmp_path, confirm_reserve=0.0)
    assert best == "lucky" and len(s.evals[s.best()]) == 1


def test_the_reserve_re_measures_contenders_and_keeps_the_real_best(tmp_path):
    best, s = run(tmp_path, confirm_reserve=0.34)
    assert best == "solid" and len(s.evals[s.best()]) >= 2
    assert s.stats.evaluations <= 6
