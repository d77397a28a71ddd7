"""report.html as a browser sees it: the markdown rendered (tables are <table>, headings are
headings), model text never becomes markup, the best code with its diff, no empty plots.

Opened in headless Chromium when it runs here; else read with html.parser (same checks)."""
from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from kopt.agent.core import Candidate, Evaluation
from kopt.agent.runs.run_report import write_reports
from kopt.agent.runs.store import Store

REF = "import torch\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return torch.relu(x)\n"
BEST = REF.replace("torch.relu(x)", "x.clamp_min(0)")
EVIL = "use <script>alert(1)</script> | and ## not a heading"


def result(verdict: str, speedup: float | None) -> dict:
    ok = verdict in ("faster", "same", "slower")
    return {"verdict": verdict, "correct": ok, "speedup": speedup,
            "speedup_ci": [speedup * 0.9, speedup * 1.1] if speedup else None,
            "reason": None if ok else "values differ", "checks": {}}


def make_run(root: Path, with_best: bool) -> Path:
    d = root / ("best" if with_best else "none")
    store = Store.open_run_dir(d)
    store.start_run("r1", "optimize", "task.py", {})
    ref = Candidate(code=REF, plan_step="reference (baseline)", proposer={"model": "reference"})
    child = Candidate(code=BEST, parent_ids=[ref.id], plan_step=EVIL, proposer={"model": "m|x"})
    for c in (ref, child):
        store.add_candidate("r1", c)
    store.add_evaluation("r1", Evaluation(ref.id, result("same", 1.0) if with_best else result("incorrect", None)))
    store.add_evaluation("r1", Evaluation(child.id, result("faster", 2.0) if with_best else
                                          result("incorrect", None)))
    write_reports(d, store, "r1", child.id if with_best else None, "budget spent", "rules")
    store.close()
    return d


def browser() -> str | None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        return None
    try:
        p = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "about:blank"],
                           capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return exe if p.returncode == 0 and "<html" in p.stdout else None


BROWSER = browser()


def dom(page: Path) -> str:
    """The DOM after a browser parsed and ran the page (the file itself without a browser)."""
    if BROWSER is None:
        return page.read_text()
    p = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.resolve().as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-500:]
    return p.stdout


class Elements(HTMLParser):
    """Counts of tags, the text of headings and table cells."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: dict[str, int] = {}
        self.stack: list[str] = []
        self.headings: list[str] = []
        self.cells: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.stack.append(tag)

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop() != tag:
            pass

    def handle_data(self, data):
        if self.stack and self.stack[-1] in ("h1", "h2"):
            self.headings.append(data.strip())
        if self.stack and self.stack[-1] in ("td", "th"):
            self.cells.append(data.strip())


def test_tables_are_tables_and_model_text_stays_text(tmp_path):
    if BROWSER is None:
        print("chromium not available: checking the HTML with html.parser only")
    page = make_run(tmp_path, with_best=True) / "report.html"
    doc = Elements(dom(page))
    assert doc.tags.get("table", 0) >= 2 and doc.tags.get("td", 0) >= 6  # speedup curve, candidates
    assert "Candidates" in doc.headings and "Failure reasons" in doc.headings
    assert not any(h.startswith("#") for h in doc.headings)
    assert doc.tags.get("script", 0) == 0  # the model's "<script>" is text
    assert any("<script>alert(1)</script> | and ## not a heading" in c for c in doc.cells)  # one cell, | kept
    assert "m|x" in doc.cells
    text = page.read_text()
    assert "<p>|" not in text and "<pre>|" not in text


def test_best_code_and_its_diff(tmp_path):
    doc = dom(make_run(tmp_path, with_best=True) / "report.html")
    assert "Diff against the reference" in doc
    assert "-        return torch.relu(x)" in doc and "+        return x.clamp_min(0)" in doc
    assert "<svg" in doc  # a verified speedup: the curve and the lineage are drawn


def test_no_plot_without_data(tmp_path):
    doc = Elements(dom(make_run(tmp_path, with_best=False) / "report.html"))
    assert doc.tags.get("svg", 0) == 1  # the lineage (reference -> child); no empty speedup axes
    assert "Best verified speedup over evaluations (plot)" not in doc.headings
    assert "Best solution" not in doc.headings


@pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_chromium_runs_here():
    assert BROWSER
