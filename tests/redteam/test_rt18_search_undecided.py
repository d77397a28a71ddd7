"""rt18: Search.undecided() / _decide_undecided() when proposals run out with budget left.

A candidate can be verified `faster` on verdicts alone (estimate.verified_faster: "no
interval: the verdicts decide, by majority") with no `speedup` number. When such a
candidate is the answer, undecided() computes point(answer) = combine([]) ->
statistics.median([]) and the run crashed with StatisticsError instead of returning it (fixed: such a
candidate has no point estimate, -inf).
(Scripted evaluator; no sandbox.)"""
from __future__ import annotations

from tests.search.test_search_endgame import run_landscape


def _verdict_only(verdict: str) -> dict:
    return {"verdict": verdict, "correct": True, "compiled": True, "speedup": None,
            "speedup_ci": None, "reason": None, "checks": {}}


def test_a_verdict_only_faster_answer_does_not_crash_the_endgame(tmp_path):
    results = {"ref": [_verdict_only("same")] * 9, "fast": [_verdict_only("faster")] * 5}
    best, s = run_landscape(tmp_path, lambda name, k: dict(results[name][k - 1]), {"ref": ["fast"], "fast": []},
                            budget=12)
    assert best == "fast"
    assert s.stats.evaluations <= 12
