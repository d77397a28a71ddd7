"""Benchmark scripts say what they measured: eval_overhead does not call the target met when a
task failed; skill_ablation's --memo replays only measurements taken with the same evaluator
settings and kopt version, and counts what it replayed."""
from __future__ import annotations

import json

from benchmarks.studies import eval_overhead, skill_ablation
from kopt.sandboxes.evaluator import EvalConfig


def test_overhead_target_is_not_met_when_a_task_failed():
    assert eval_overhead.target_line(0.01, []).endswith("-- met (worst 0.01 s)")
    line = eval_overhead.target_line(0.01, ["cpp_copy"])
    assert "NOT checked" in line and "cpp_copy" in line and "-- met" not in line
    assert "NOT met" in eval_overhead.target_line(eval_overhead.TARGET_S + 1, [])


class Counting:
    """Stands in for the sandboxed evaluation: numbers each call, so a replay is visible."""

    def __init__(self):
        self.calls = 0

    def __call__(self, task, solution, cfg):
        self.calls += 1
        return {"verdict": "same", "speedup": 1.0 + self.calls, "max_timing_s": cfg.max_timing_s}


def memo_run(tmp_path, memo, max_timing: float) -> tuple[skill_ablation.MemoEvaluator, Counting, dict]:
    ev = skill_ablation.MemoEvaluator({"max_timing_s": max_timing}, memo)
    ev.evaluate = fake = Counting()
    sol = tmp_path / "sol.py"
    sol.write_text("print(1)\n")
    return ev, fake, ev(tmp_path / "task.py", sol, EvalConfig())


def test_memo_replays_only_the_same_settings(tmp_path):
    memo = tmp_path / "memo.json"
    ev, fake, first = memo_run(tmp_path, memo, 5.0)
    assert fake.calls == 1 and ev.replayed == 0 and ev.measured == 1
    ev, fake, again = memo_run(tmp_path, memo, 5.0)  # a second invocation, same settings
    assert fake.calls == 0 and ev.replayed == 1 and again == first
    ev, fake, other = memo_run(tmp_path, memo, 2.0)  # other evaluator settings: measured anew
    assert fake.calls == 1 and ev.replayed == 0 and other["max_timing_s"] == 2.0
    assert len(json.loads(memo.read_text())) == 2  # one group of measurements per settings key


def test_memo_from_before_settings_keys_is_not_replayed(tmp_path):
    memo = tmp_path / "memo.json"
    memo.write_text(json.dumps({f"{tmp_path / 'task.py'}|abc|1": {"verdict": "faster", "speedup": 9.0}}))
    ev, fake, r = memo_run(tmp_path, memo, 5.0)
    assert fake.calls == 1 and ev.replayed == 0 and r["speedup"] == 2.0


def test_settings_key_follows_settings_and_version(monkeypatch):
    a, b = EvalConfig(), EvalConfig(noise_floor=0.2)
    assert skill_ablation.settings_key(a) == skill_ablation.settings_key(EvalConfig(hidden_paths=["/x"]))
    assert skill_ablation.settings_key(a) != skill_ablation.settings_key(b)
    import importlib.metadata

    key = skill_ablation.settings_key(a)
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9.9")
    assert skill_ablation.settings_key(a) != key
