"""`make demo`'s last line sets what the run verified against the README's figure, and the
README's visible figure is the one the check reads."""
from __future__ import annotations

import json
import re
from pathlib import Path

from kopt.agent.cli.demo_check import readme_claim, verdict_line

ROOT = Path(__file__).resolve().parents[2]


def demo_run(tmp_path: Path, best: float | None) -> Path:
    d = tmp_path / "demo"
    (d / "best").mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"best_speedup": best, "evaluations": 6, "failures": {}}))
    verdict = "faster" if best and best > 1.3 else "same"
    (d / "best" / "evaluations.json").write_text(json.dumps([{"speedup": best, "speedup_ci": [1.5, 2.5],
                                                              "verdict": verdict}] * 3))
    return d


def test_the_readme_states_the_figure_it_checks():
    claim = readme_claim(ROOT / "README.md")
    assert claim is not None and claim > 1
    text = (ROOT / "README.md").read_text()
    assert re.search(rf"about {claim:g}x on a\s+2-core CPU", text), "the visible figure and the marker differ"


def test_verdict_against_the_claim(tmp_path):
    line, code = verdict_line(demo_run(tmp_path, 2.0), 2.0)
    assert code == 0 and "2.00x, verified faster" in line and "as the README says" in line and "CI 1.50-2.50" in line
    assert "3 of them 'faster'" in line
    line, code = verdict_line(demo_run(tmp_path / "slow", 1.1), 3.0)
    assert code == 0 and "below the README's figure" in line and "not verified faster" in line
    line, code = verdict_line(demo_run(tmp_path / "none", None), 3.0)
    assert code == 1 and "nothing verified faster" in line
    line, code = verdict_line(tmp_path / "missing", 3.0)
    assert code == 1 and "did not finish" in line
