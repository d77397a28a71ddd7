"""rt18: Search.undecided() / _decide_undecided() when proposals run out with budget left.

A candidate can be verified `faster` on verdicts alone (estimate.verified_faster: "no
interval: the verdicts decide, by majority") with no `speedup` number. When such a
candidate is the answer, undecided() computes point(answer) = combine([]) ->
statistics.median([]) and the run crashed with StatisticsError instead of returning it (fixed: such a
candidate has no point estimate, -inf).
(Scripted evaluator; no sandbox.)"""
from __future__ import annotations

from pathlib import Path

from kopt.agent.core import Candidate
from kopt.agent.runs.store import Store
from kopt.agent.search.loop import Search, SearchConfig
from tests.search.test_search_endgame import TASK, LandscapeProposer, code_of, name_of


def _verdict_only(verdict: str) -> dict:
    return {"verdict": verdict, "correct": True, "compiled": True, "speedup": None,
            "speedup_ci": None, "reason": None, "checks": {}}


def _run(tmp_path: Path, measurements: dict, children: dict, budget: int = 12):
    seen: dict[str, int] = {}

    def evaluator(task, solution, eval_cfg):
        name = name_of(Path(solution).read_text())
        k = seen[name] = seen.get(name, 0) + 1
        return dict(measurements[name][k - 1])

    task = tmp_path / "task.py"
    task.write_text(TASK)
    proposer = LandscapeProposer()
    proposer.propose = lambda ctx: [Candidate(code=code_of(c), parent_ids=[ctx["parent"].id], plan_step=c)
                                    for c in children[name_of(ctx["parent"].code)]]
    s = Search(task, proposer, Store(":memory:"), "r", tmp_path,
               SearchConfig(budget=budget, novelty="tokens"), evaluator=evaluator)
    best = s.run()
    return (name_of(s.cands[best].code) if best else None), s


def test_a_verdict_only_faster_answer_does_not_crash_the_endgame(tmp_path):
    best, s = _run(tmp_path, {"ref": [_verdict_only("same")] * 9, "fast": [_verdict_only("faster")] * 5},
                   {"ref": ["fast"], "fast": []})
    assert best == "fast"
    assert s.stats.evaluations <= 12
