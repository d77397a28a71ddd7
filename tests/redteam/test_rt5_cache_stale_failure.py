"""Red team round 5: an honest candidate stuck with a stale failure in the evaluation cache.
A failure of the moment (`timeout`, `rejected` for CPU outside the calls, a crash under load)
was served for ever once two came in a row, even for a candidate measured `same` before: a
search's first evaluation passed, its confirmation and the next run's timed out on a busy
machine, and every later `kopt optimize` / `bench` / `train` got `timeout` without measuring
again (the machine now gave `same`). A candidate that has passed is measured again instead.
"""
from __future__ import annotations

from kopt.sandboxes.eval_cache import CachedEvaluator, EvalCache, Need, decide
from kopt.sandboxes.evaluator import EvalConfig

SAME = {"verdict": "same", "correct": True, "compiled": True, "speedup": 1.0, "speedup_ci": [0.95, 1.05],
        "checks": {}}
TIMEOUT = {"verdict": "timeout", "correct": False, "reason": "the solution's calls took 130s in all", "checks": {}}


def test_two_failures_after_a_pass_are_measured_again():
    assert decide([SAME, TIMEOUT, TIMEOUT], Need.verdict(), 0.1) is None
    assert decide([TIMEOUT, TIMEOUT], Need.verdict(), 0.1)["verdict"] == "timeout"  # never passed: served


def test_a_later_run_measures_a_candidate_that_passed_before_its_failures(tmp_path):
    task, solution = tmp_path / "task.py", tmp_path / "solution.py"
    task.write_text("task")
    solution.write_text("solution")
    machine = [SAME, TIMEOUT, TIMEOUT]  # a pass, then two measurements in a busy hour, then quiet again
    measured = []

    def sandbox(t, s, cfg):
        measured.append(1)
        return dict(machine[len(measured) - 1] if len(measured) <= len(machine) else SAME)

    cache = EvalCache(tmp_path / "evals.sqlite")
    search = CachedEvaluator(cache, sandbox, fresh_on_repeat=True)
    search(task, solution, EvalConfig())
    search(task, solution, EvalConfig())  # the search's confirmation: timeout
    CachedEvaluator(cache, sandbox)(task, solution, EvalConfig())  # the next run: timeout again
    later = CachedEvaluator(cache, sandbox)(task, solution, EvalConfig())
    assert len(measured) == 4 and later["verdict"] == "same", later
