"""`kopt bench` pieces that need no evaluation: fast_p maths, suite discovery and its
errors, size-constant analysis, the reports and `runs compare` over stored results."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from kopt.agent.errors import UserInputError
from kopt.agent.targets.kernelbench.sizes import next_step, rewrite, size_constants
from kopt.benchmarks.bench_report import compare, write_bench_report
from kopt.benchmarks.bench_results import write_json
from kopt.benchmarks.bench_runner import BenchConfig
from kopt.benchmarks.fastp import by_level, fast_p_curve, metrics
from kopt.benchmarks.suite import discover, find_tasks, parse_selection

TASK = """import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x):
        return torch.relu(x)


batch_size = {batch}
channels = 3
height, width = 64, 32


def get_inputs():
    return [torch.randn(batch_size, channels, height, width)]


def get_init_inputs():
    return [channels]
"""

# hand-checked: 6 tasks; one skipped and one degenerate leave 4 scored:
#   a 2.5x correct, b 1.2x correct, c 0.8x correct, d incorrect  ->  correct 3/4,
#   fast_0.5 3/4, fast_1 2/4, fast_1.5 1/4, fast_2 1/4, geomean (2.5*1.2*0.8)^(1/3)
RESULTS = [
    {"id": "a", "level": 1, "status": "done", "correct": True, "speedup": 2.5, "evaluations": 2, "tokens": 100,
     "cost": 0.01, "failures": {}},
    {"id": "b", "level": 1, "status": "done", "correct": True, "speedup": 1.2, "evaluations": 1, "tokens": 50,
     "cost": 0.02, "failures": {"compile": 1}},
    {"id": "c", "level": 2, "status": "done", "correct": True, "speedup": 0.8, "evaluations": 1},
    {"id": "d", "level": 2, "status": "done", "correct": False, "speedup": None, "evaluations": 3,
     "failures": {"incorrect": 2, "timeout": 1}},
    {"id": "e", "level": 2, "status": "done", "correct": True, "speedup": 9.0, "degenerate": True},
    {"id": "f", "level": 2, "status": "skipped", "reason": "needs a GPU"},
]


def test_fast_p_against_hand_checked_numbers():
    m = metrics(RESULTS)
    assert (m["tasks"], m["scored"], m["skipped"], m["degenerate_excluded"]) == (6, 4, 1, 1)
    assert m["correct_rate"] == 0.75
    assert m["fast_p"] == {"0": 0.75, "0.5": 0.75, "1": 0.5, "1.5": 0.25, "2": 0.25}
    assert math.isclose(m["geomean_speedup"], (2.5 * 1.2 * 0.8) ** (1 / 3))
    assert (m["evaluations"], m["tokens"], m["cost"]) == (7, 150, 0.03)
    assert m["failures"]["compile"] == 1 and m["failures"]["incorrect"] == 2 and m["failures"]["timeout"] == 1
    with_deg = metrics(RESULTS, include_degenerate=True)
    assert with_deg["scored"] == 5 and with_deg["fast_p"]["2"] == 0.4
    levels = by_level(RESULTS)
    assert levels["1"]["fast_p"]["1"] == 1.0 and levels["2"]["fast_p"]["0"] == 0.5 and levels["all"]["scored"] == 4
    curve = dict(fast_p_curve(RESULTS, points=6, p_max=2.5))
    assert curve[0.0] == 0.75 and curve[1.0] == 0.5 and curve[2.5] == 0.0


def _write(path: Path, batch: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TASK.format(batch=batch))
    return path


def test_suite_layouts_selection_and_errors(tmp_path):
    root = tmp_path / "KernelBench-checkout"
    for lv, names in ((1, ["1_A.py", "2_B.py", "10_C.py"]), (2, ["1_D.py"])):
        for n in names:
            _write(root / "KernelBench" / f"level{lv}" / n)
    (root / "KernelBench" / "level1" / "notes.py").write_text("x = 1\n")
    assert [t.name for t in discover(root)] == ["1_A", "2_B", "10_C", "1_D"]
    assert [t.number for t in find_tasks(root / "KernelBench", 1, "2,10")] == [2, 10]
    assert parse_selection("1-3,7,relu") == [1, 2, 3, 7, "relu"]
    with pytest.raises(UserInputError, match=r"no level 5 .* found level\(s\) 1, 2"):
        discover(root, 5)
    with pytest.raises(UserInputError, match=r"no task 4, 42 .* task number\(s\) 1-2,10 \(1_A, 2_B, 10_C\)"):
        find_tasks(root, 1, "4,42")
    flat = tmp_path / "flat"
    _write(flat / "relu_chain.py")
    _write(flat / "softmax.py")
    assert [(t.number, t.id) for t in find_tasks(flat, None, "2")] == [(2, "softmax")]
    with pytest.raises(UserInputError, match="without levels"):
        discover(flat, 1)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.txt").write_text("hi")
    with pytest.raises(UserInputError, match=r"no KernelBench tasks in .*found readme.txt, sub/"):
        discover(empty)


def test_size_constants_are_classified_and_rewritten_in_place():
    src = TASK.format(batch="1024 * 4")
    kinds = {c.name: (c.value, c.kind) for c in size_constants(src)}
    assert kinds == {"batch_size": (4096, "batch"), "channels": (3, "structural"), "height": (64, "spatial"),
                     "width": (32, "spatial")}
    consts = size_constants(src)
    sizes = {c.name: c.value for c in consts}
    steps = []
    while (sizes := next_step(consts, sizes, set())) is not None:
        steps.append(sizes)
    assert steps[0]["batch_size"] == 2048 and steps[-1] == {"batch_size": 2, "channels": 3, "height": 8, "width": 8}
    assert all(s["channels"] == 3 for s in steps)
    out = rewrite(src, consts, {"batch_size": 8, "height": 16})
    assert "batch_size = 8\n" in out and "height, width = 16, 32" in out and "channels = 3" in out
    assert out.replace("8\n", "1024 * 4\n", 1).replace("16, 32", "64, 32") == src


def test_chained_and_list_sizes_are_found():
    """Upstream writes `height = width = 256` (level 2 #4) and `layer_sizes = [16384, 16384]`
    (level 3 #1): both were invisible to fitting, so those tasks stayed too big to run."""
    src = TASK.format(batch="64").replace("height, width = 64, 32", "height = width = 256").replace(
        "channels = 3\n", "channels = 3\nlayer_sizes = [400, 800]\n").replace(
        "return [channels]", "return [channels, layer_sizes]")
    kinds = {c.name: (c.value, c.kind) for c in size_constants(src)}
    assert kinds["height=width"] == (256, "spatial")
    assert kinds["layer_sizes[0]"] == (400, "width") and kinds["layer_sizes[1]"] == (800, "width")
    assert kinds["channels"] == (3, "structural")
    consts = size_constants(src)
    out = rewrite(src, consts, {"height=width": 16, "layer_sizes[1]": 100})
    assert "height = width = 16\n" in out and "layer_sizes = [400, 100]\n" in out
    sizes = {c.name: c.value for c in consts}
    only_widths = next_step(consts, sizes, set(), ("width",))
    assert only_widths["batch_size"] == sizes["batch_size"] and only_widths["layer_sizes[1]"] == 400


def _bench(tmp: Path, name: str, model: str, rows: list[dict]) -> Path:
    d = tmp / name
    (d / "tasks").mkdir(parents=True)
    cfg = BenchConfig(suite=str(tmp / "suite"), model=model)
    write_json(d / "bench.json", {"created": 0, "config": cfg.__dict__,
                                  "tasks": [{k: r[k] for k in ("id", "level")} | {"name": r["id"], "number": i,
                                                                                  "path": "x"}
                                            for i, r in enumerate(rows)]})
    for r in rows:
        (d / "tasks" / r["id"]).mkdir()
        write_json(d / "tasks" / r["id"] / "result.json", r)
    return d


def test_reports_and_compare_from_stored_results(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    rows = [dict(r, baselines={"compile": {"correct": True, "speedup": 1.1}}) for r in RESULTS]
    a = _bench(tmp_path, "A", "rules", rows)
    b = _bench(tmp_path, "B", "openai/x", [dict(r, speedup=(r.get("speedup") or 0) * 2 or None) for r in RESULTS])
    summary = write_bench_report(a)
    assert summary["metrics"]["all"]["fast_p"]["1"] == 0.5 and summary["compile_metrics"]["all"]["correct"] == 4
    page = (a / "report.html").read_text()
    assert page.count("<svg") == 3 and "fast_1.5" in page and "torch.compile" in page
    md = (a / "report.md").read_text()
    assert "| model | all | 6 | 1 | 1 | 75% | 75% | 50% | 25% | 25% |" in md
    res = compare(a, b, tmp_path / "cmp.html")
    assert ["fast_1", "50%", "75%"] in res["totals"] and ["a", "2.50x", "5.00x", "2.00"] in res["rows"]
    assert (tmp_path / "cmp.html").read_text().count("<svg") == 1
    monkeypatch.setitem(__import__("sys").modules, "matplotlib.figure", None)
    write_bench_report(a)
    page = (a / "report.html").read_text()
    assert "<svg" not in page and "kopt[report]" in page and "fast_1.5" in page
    assert json.loads((a / "summary.json").read_text())["total"] == 6


def test_a_folder_of_program_targets_is_a_suite():
    programs = Path(__file__).parents[1] / "fixtures" / "programs"
    tasks = {t.name: t for t in discover(programs)}
    assert {"dedupe", "hashset", "quicksort"} <= set(tasks)
    dedupe = tasks["dedupe"]
    assert dedupe.kind == "program" and dedupe.path.name == "prog.cpp" and dedupe.tests.name == "tests"
    assert dedupe.validator.name == "validator.cpp"
    assert type(dedupe).from_record(dedupe.record()) == dedupe
