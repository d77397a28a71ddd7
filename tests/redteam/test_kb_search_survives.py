"""No candidate can end a search (issue 16, item 4): inside `kopt optimize`, a candidate
that writes a malformed frame on its reply pipe gets `rejected`, and the search goes on to
evaluate the next candidate. Before, such a candidate exited the run with "the task's
reference failed" (exit 2)."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

pytest.importorskip("openai")
pytest.importorskip("torch")

from kopt.agent.runs.store import Store  # noqa: E402
from kopt.agent.search.optimize import run_optimize  # noqa: E402
from kopt.sandboxes.evaluator import EvalConfig  # noqa: E402
from tests.support.chat_server import ChatServer  # noqa: E402

TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "relu.py"

HOSTILE = '''```python
import os, struct, sys, time
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        fd = int(sys.argv[sys.argv.index("--fd-out") + 1])
        os.write(fd, struct.pack("<II", 5, 0) + b"{{{{{")  # a reply kopt cannot parse
        time.sleep(600)
        return torch.relu(x)
```'''

HONEST = '''```python
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.clamp_min(x, 0.0)
```'''


BODIES = ["torch.clamp_min(x, 0.0)", "torch.where(x > 0, x, torch.zeros_like(x))", "x * (x > 0).to(x.dtype)",
          "torch.nn.functional.relu(x)", "x.clamp(min=0.0)", "torch.maximum(x, torch.zeros_like(x))"]


def test_a_hostile_reply_is_a_verdict_and_the_search_goes_on(tmp_path):
    # the search may ask more often than it evaluates (an answer it has seen costs no evaluation)
    honest = [HONEST] + [HONEST.replace("torch.clamp_min(x, 0.0)", b) for b in BODIES[1:]]
    answers = itertools.chain([HOSTILE], itertools.cycle(honest))

    def script(body, n):
        last = body["messages"][-1]["content"]
        return 200, ("1. use clamp_min" if "Plan only" in last else next(answers)), 0

    with ChatServer(script) as srv:
        summary = run_optimize(TASK, model="openai/tiny", base_url=srv.url, budget=5, run_dir=tmp_path / "run",
                               quiet=True, eval_cfg=EvalConfig(max_timing_s=2, rounds=5, trials=2))
    store = Store.open_run_dir(tmp_path / "run")
    by_code = {c.id: c.code for c in store.candidates()}
    verdicts = [(by_code[e.candidate_id], e.result) for e in store.evaluations()]
    hostile = [r for code, r in verdicts if "fd-out" in code]
    honest = [r for code, r in verdicts if "fd-out" not in code]
    assert hostile and all(r["verdict"] == "rejected" for r in hostile), hostile
    assert honest and all(r["correct"] is True for r in honest), verdicts  # the search went on after the hostile one
    assert summary["evaluations"] == len(verdicts) >= 2
