"""Every file or folder docs/architecture.md names exists: the page is read against the code."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATH = re.compile(r"\b((?:agent|sandboxes|skills|benchmarks|rl_finetune|tests|docs)/[A-Za-z0-9_./-]*)")


def cited_paths(text: str) -> set[str]:
    """Paths in the text; a placeholder in capitals (`NAME.py`) is not a path."""
    return {m.rstrip(".") for m in PATH.findall(text) if not re.search(r"/[A-Z_]+\.py$", m)}


def test_architecture_page_cites_only_paths_that_exist():
    cited = cited_paths((ROOT / "docs" / "architecture.md").read_text())
    assert len(cited) > 20  # the page does cite the layout
    assert sorted(p for p in cited if not (ROOT / p).exists()) == []


def test_a_missing_path_is_seen():
    assert cited_paths("see `agent/nowhere.py` and agent/search/loop.py.") == {"agent/nowhere.py",
                                                                              "agent/search/loop.py"}
