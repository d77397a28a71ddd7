"""kopt bench's two readings (issue 20 item 2): raw (the best correct candidate, slower or
not) and never slower (a task with no verified-faster candidate counts 1.0x)."""
from __future__ import annotations

import math

from kopt.benchmarks.bench_report import summary_rows
from kopt.benchmarks.fastp import metrics, never_slower_results, never_slower_speedup


def ev(speedup: float, verdict: str) -> dict:
    return {"verdict": verdict, "correct": True, "speedup": speedup, "speedup_ci": [speedup * 0.95, speedup * 1.05]}


def test_a_task_without_a_verified_faster_candidate_yields_the_reference():
    assert never_slower_speedup({"a": [ev(0.8, "slower")], "b": [ev(1.05, "same")]}) == 1.0
    assert never_slower_speedup({"a": [ev(0.8, "slower")], "b": [ev(1.6, "faster"), ev(1.4, "faster")]}) == 1.5
    assert never_slower_speedup({"lucky": [ev(2.5, "faster"), ev(0.9, "same")]}) == 1.0
    assert never_slower_speedup({}) == 1.0


def test_metrics_with_and_without_the_fallback():
    results = [
        {"status": "done", "correct": True, "speedup": 2.0, "speedup_never_slower": 2.0},
        {"status": "done", "correct": True, "speedup": 0.5, "speedup_never_slower": 1.0},  # slower: reference
        {"status": "done", "correct": False, "speedup": None, "speedup_never_slower": 1.0},  # nothing correct
        {"status": "skipped", "correct": False, "speedup": None},
    ]
    raw, safe = metrics(results), metrics(never_slower_results(results))
    assert math.isclose(raw["geomean_speedup"], 1.0)  # sqrt(2 * 0.5): the slower one drags it down
    assert math.isclose(safe["geomean_speedup"], 2 ** (1 / 3))  # (2 * 1 * 1) ** (1/3)
    assert raw["fast_p"]["1"] == safe["fast_p"]["1"] == 1 / 3
    assert raw["fast_p"]["0.5"] == 1 / 3 and safe["fast_p"]["0.5"] == 1.0
    assert raw["correct"] == 2 and safe["correct"] == 3 and safe["skipped"] == 1


def test_the_bench_summary_has_a_never_slower_row_next_to_the_raw_one():
    results = [{"status": "done", "level": 1, "correct": True, "speedup": 0.5, "speedup_never_slower": 1.0},
               {"status": "done", "level": 1, "correct": True, "speedup": 2.0, "speedup_never_slower": 2.0}]
    rows = summary_rows(results)
    geo = rows[0].index("geomean speedup")
    by_label = {r[0]: r for r in rows[1:]}
    assert by_label["model"][geo] == "1.00x"  # sqrt(0.5 * 2)
    assert by_label["model, never slower"][geo] == "1.41x"  # sqrt(1 * 2)
