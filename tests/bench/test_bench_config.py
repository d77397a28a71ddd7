"""`kopt bench` hands each task's search one OptimizeConfig built from its BenchConfig (the bench's
model, budget, device and [eval]); each task gets a copy, a program task its kind and options."""
from __future__ import annotations

from kopt.agent.search.optimize_config import ProgramOptions
from kopt.benchmarks.bench_runner import BenchConfig, TaskRunner


def test_a_tasks_search_runs_with_the_benchs_settings(tmp_path):
    cfg = BenchConfig(suite=str(tmp_path), model="openai/tiny", base_url="http://127.0.0.1:9", budget=5,
                      device="cpu", eval={"trials": 2, "rounds": 3})
    runner = TaskRunner(cfg, tmp_path, executor=None)
    kb = runner._task_config()
    assert (kb.model.name, kb.model.base_url, kb.search.budget) == ("openai/tiny", "http://127.0.0.1:9", 5)
    assert (kb.eval.trials, kb.eval.rounds, kb.eval.device) == (2, 3, "cpu") and kb.search.eval is kb.eval
    assert kb.run.kind is None and kb.target is None
    prog = runner._task_config("program", {"tests": tmp_path / "tests", "validator": None})
    assert prog.run.kind == "program" and isinstance(prog.target, ProgramOptions)
    assert prog.target.tests == str(tmp_path / "tests") and prog.target.validator is None
    kb.eval.hidden_paths.append("/one/task/only")  # a task's run adjusting its copy touches no other task
    assert runner._task_config().eval.hidden_paths == [] and prog.eval.hidden_paths == []
