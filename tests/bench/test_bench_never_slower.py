"""kopt bench with `rules` on a task no rule wins: raw, nothing is correct; never slower, the
reference stands and counts 1.0x (issue 20 item 2)."""
from __future__ import annotations

from kopt.benchmarks.bench_runner import BenchConfig, run_bench

TASK = ("import torch\n\n\nclass Model(torch.nn.Module):\n    def forward(self, x):\n"
        "        return torch.sort(x, dim=-1)[0]\n\n\ndef get_inputs():\n    return [torch.randn(4, 8)]\n\n\n"
        "def get_init_inputs():\n    return []\n")


def test_bench_reports_both_readings_on_a_task_no_rule_wins(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "1_sort.py").write_text(TASK)
    summary = run_bench(BenchConfig(suite=str(suite), model="rules", budget=1, fit="none", baselines=["eager"]),
                        tmp_path / "bench")
    task = summary["tasks"][0]
    assert task["status"] == "done" and not task["correct"]
    raw, safe = summary["metrics"]["-"], summary["never_slower_metrics"]["-"]
    assert raw["fast_p"]["0"] == 0.0 and raw["geomean_speedup"] is None
    assert safe["fast_p"]["0"] == 1.0 and safe["fast_p"]["1"] == 0.0 and safe["geomean_speedup"] == 1.0
    report = (tmp_path / "bench" / "report.md").read_text()
    assert "model, never slower" in report
