"""kernelbench_copies without evaluations: how a result is named, the table, task selection,
resuming, and the copy itself (a `super(Model, self)` reference must load as ModelNew)."""
from __future__ import annotations

import json

import pytest

from benchmarks.studies.kernelbench_copies import (
    evaluate_copy,
    load_previous,
    main,
    outcome,
    parse_levels,
    run,
    select_tasks,
    table,
)
from kopt.agent.errors import UserInputError
from kopt.sandboxes.kernelbench_tasks import reference_solution

TASK = """import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, scale):
        super(Model, self).__init__()
        self.scale = scale

    def forward(self, x):
        return torch.tanh(x) * self.scale

batch_size = 4
dim = 8

def get_inputs():
    return [torch.randn(batch_size, dim)]

def get_init_inputs():
    return [2.0]
"""


def _suite(tmp_path, levels=(1, 2)):
    for lv in levels:
        d = tmp_path / "KernelBench" / f"level{lv}"
        d.mkdir(parents=True)
        for n in (1, 2, 3):
            (d / f"{n}_Tanh{n}.py").write_text(TASK)
    return tmp_path


@pytest.mark.parametrize("rec, expected", [
    ({"verdict": "same", "speedup": 1.02}, "same"),
    ({"verdict": "same", "speedup": 0.47}, "same_outside_band"),
    ({"verdict": "same", "speedup": 1.2}, "same_outside_band"),
    ({"verdict": "same", "speedup": 0.5, "degenerate": True}, "degenerate"),
    ({"verdict": "runtime_error", "degenerate": True}, "runtime_error"),
    ({"verdict": "slower", "speedup": 0.6}, "slower"),
    ({"skipped": "too big for this machine (900 MiB)", "too_large": True}, "too_large"),
    ({"skipped": "ModuleNotFoundError: No module named 'transformers'", "too_large": False}, "skipped"),
])
def test_outcome_names_each_result(rec, expected):
    assert outcome(rec) == expected


def test_table_counts_per_level_and_lists_every_other_outcome():
    results = [
        {"level": 1, "number": 1, "name": "1_a", "outcome": "same", "eval_s": 10.0, "wall_s": 12},
        {"level": 1, "number": 2, "name": "2_b", "outcome": "runtime_error", "reason": "stress-shape trial failed",
         "eval_s": 30.0, "wall_s": 31},
        {"level": 2, "number": 7, "name": "7_c", "outcome": "degenerate", "degenerate_reason": "output constant",
         "eval_s": 5.0, "wall_s": 6},
    ]
    text = table(results)
    header, _, row1, row2 = text.splitlines()[:4]
    cols = [c.strip() for c in header.strip("|").split("|")]
    one = dict(zip(cols, (c.strip() for c in row1.strip("|").split("|"))))
    two = dict(zip(cols, (c.strip() for c in row2.strip("|").split("|"))))
    assert (one["tasks"], one["same"], one["runtime_error"]) == ("2", "1", "1")
    assert (two["level"], two["degenerate"], two["same"]) == ("2", "1", "0")
    assert "2_b: **runtime_error** -- stress-shape trial failed" in text
    assert "7_c: **degenerate** -- output constant" in text
    assert "1_a" not in text
    assert "median 10.0 s" in text and "max 30.0 s" in text and "2/3 under 20 s" in text


def test_select_tasks_by_level_and_number(tmp_path):
    suite = _suite(tmp_path)
    chosen = select_tasks(suite, [2, 1], "2-3")
    assert [(t.level, t.number) for t in chosen] == [(1, 2), (1, 3), (2, 2), (2, 3)]
    with pytest.raises(UserInputError, match="no level 3"):
        select_tasks(suite, [3], None)
    with pytest.raises(UserInputError, match="--levels"):
        parse_levels("one")


def test_resume_skips_finished_tasks_and_retries_crashes(tmp_path):
    suite = _suite(tmp_path, levels=(1,))
    tasks = select_tasks(suite, [1], None)
    finished = [{"id": t.id, "level": 1, "number": t.number, "name": t.name, "outcome": "same"} for t in tasks]
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"results": finished[:2] + [{**finished[2], "outcome": "crash"}]}))
    previous = load_previous(out)
    assert [r["id"] for r in previous] == [t.id for t in tasks[:2]]  # the crash is run again
    # everything already done: nothing is evaluated, the results come back as they were
    assert run(tasks, out, tmp_path / "work", {}, 1, finished, echo=lambda s: None) == finished
    assert not (tmp_path / "work").exists()


def test_copy_of_a_super_model_reference_loads_as_model_new():
    ns: dict = {}
    exec(reference_solution(TASK), ns)  # noqa: S102 - our own test source
    assert "Model" not in ns and ns["ModelNew"](3.0).scale == 3.0


def test_missing_suite_is_a_message_not_an_error(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 0
    assert "no KernelBench checkout" in capsys.readouterr().out
    assert main([str(_suite(tmp_path)), "--resume"]) == 2
    assert "--resume needs --json" in capsys.readouterr().err


def test_a_task_that_cannot_run_is_recorded_as_skipped(tmp_path):
    pytest.importorskip("torch")
    suite = _suite(tmp_path, levels=(1,))
    broken = suite / "KernelBench" / "level1" / "1_Tanh1.py"
    broken.write_text(TASK.replace("return [torch.randn(batch_size, dim)]", "raise RuntimeError('needs a download')"))
    rec = evaluate_copy(select_tasks(suite, [1], "1")[0], tmp_path / "work", {})
    assert rec["outcome"] == "skipped" and "needs a download" in rec["skipped"]
    assert rec["wall_s"] >= 0
