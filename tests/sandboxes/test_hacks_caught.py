"""Evaluator hardening, one cheat per published trick: each is shown to fool a plain
same-process `torch.allclose` check (the KernelBench-style check of benchmarks/studies/hack_catalog.py,
so the defence matters) and shown caught by kopt. The older cheats' kopt side is pinned in
sandboxes/test_cheats_rejected.py; the cheats added for the hardening issue are evaluated here."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")

from benchmarks.studies import hack_catalog as catalog  # noqa: E402
from kopt.sandboxes.evaluator import EvalConfig, evaluate  # noqa: E402

FAST = EvalConfig(max_timing_s=3, rounds=5, call_timeout_s=30, setup_timeout_s=120)
# Cheats whose effect on the plain check is deterministic. Left out: the thread races (they flip
# between 'correct' and 'incorrect' there from run to run) and the data_ptr cache (the allocator
# may hand a freed trial input's address to the next trial's input, and the stale hit is caught).
RACY = {"late_thread", "deferred_pool", "deferred_copy", "cache_data_ptr"}
FOOLING = [a for a in catalog.ATTACKS
           if a.aim != catalog.CONTROL and a.solution not in RACY
           and (a.solution, a.task) not in {("identity", "relu"), ("constant", "relu"), ("nan_output", "relu"),
                                            ("cache_fingerprint", "relu")}
           and a.solution != "fills_while_serialised"]  # aimed at kopt's serialisation: the plain check has none


def test_every_cheat_passes_a_plain_same_process_allclose_check(tmp_path):
    pairs = [(catalog.TASKS / f"{a.task}.py", catalog.solution_file(a, tmp_path)) for a in FOOLING]
    results = catalog.run_kb_checks(pairs, tmp_path)
    not_fooled = [f"{a.solution} on {a.task}: {catalog.kb_text(r)}" for a, r in zip(FOOLING, results)
                  if r["status"] != "correct"]
    assert not not_fooled, not_fooled


def test_the_plain_check_does_catch_an_obviously_wrong_answer(tmp_path):
    """The plain check is a real check, not a rubber stamp: the same harness says 'incorrect'."""
    [result] = catalog.run_kb_checks([(catalog.TASKS / "relu.py", catalog.SOLUTIONS / "constant.py")], tmp_path)
    assert result["status"] == "incorrect"


# (solution, task, kopt verdicts that count as caught, words the reason must contain (any of))
NEW_CHEATS = [
    ("patch_allclose", "relu", ("rejected", "incorrect"), ("torch.equal", "allclose", "values differ", "harness")),
    ("drift", "relu", ("incorrect", "rejected"), ("values differ", "caches")),
    ("replay_seed", "relu", ("incorrect",), ("values differ",)),
    ("stat_shortcut", "row_mean", ("incorrect",), ("values differ", "relative error")),
    ("strided_subsample", "row_mean", ("incorrect",), ("values differ", "relative error")),
    ("lower_precision", "relu", ("incorrect",), ("values differ", "relative error")),
    ("frame_peek", "relu", ("incorrect",), ("values differ",)),
    ("identity", "relu_nonneg", ("incorrect",), ("signed",)),
]


@pytest.mark.parametrize("solution,task,verdicts,words", NEW_CHEATS, ids=[c[0] for c in NEW_CHEATS])
def test_kopt_catches(solution, task, verdicts, words):
    res = evaluate(catalog.TASKS / f"{task}.py", catalog.SOLUTIONS / f"{solution}.py", FAST)
    summary = f"verdict={res['verdict']!r} reason={res.get('reason')!r}"
    assert res["correct"] is False and res["verdict"] in verdicts, summary
    assert any(w in (res.get("reason") or "") for w in words), summary


def test_batch_and_skip_gains_nothing_under_fresh_inputs():
    """Skipping work on a repeated input object fakes a speedup in the plain check's timing loop;
    kopt gives every timed call fresh tensors and checks each output, so it must do the work
    every time and gets no 'faster' verdict."""
    res = evaluate(catalog.TASKS / "relu.py", catalog.SOLUTIONS / "batch_skip.py", FAST)
    assert res["verdict"] != "faster", res
    assert res["checks"].get("timed_calls_checked", 0) > 0 or res["correct"] is False, res


def test_catalog_rows_point_at_existing_fixtures():
    for a in catalog.ATTACKS:
        assert (catalog.SOLUTIONS / f"{a.solution}.py").exists() and (catalog.TASKS / f"{a.task}.py").exists(), a


def test_stress_shapes_catch_a_kernel_right_only_on_the_task_sizes():
    """A batch of one is a shape the task never draws; without the stress-shape trials this
    solution passes every other trial, with them it is incorrect."""
    task, sol = catalog.TASKS / "relu.py", catalog.SOLUTIONS / "squeeze_batch.py"
    without = evaluate(task, sol, FAST.model_copy(update={"edge_shapes": False}))
    assert without["correct"] is True, without
    res = evaluate(task, sol, FAST)
    assert res["correct"] is False and "stress-shape trial" in (res.get("reason") or ""), res
