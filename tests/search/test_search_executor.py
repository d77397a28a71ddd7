"""The search with an executor: a task's new children are evaluated at the same time and
every result lands in the store (a scripted landscape; no sandbox, no torch)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from kopt.agent.core import Candidate
from kopt.agent.runs.store import Store
from kopt.agent.search.loop import Search, SearchConfig
from kopt.sandboxes.executors import LocalExecutor

TASK = ("import torch\n\nclass Model(torch.nn.Module):\n    def forward(self, x):\n        return x + 1\n\n"
        "def get_inputs():\n    return [torch.randn(4)]\n\ndef get_init_inputs():\n    return []\n")


class FanOut:
    name = "fan-out"

    def propose(self, context):
        parent = context["parent"]
        if parent.parent_ids:
            return []
        return [Candidate(code=f"# child {i}\n" + f"value_{i} = {i} * {i}  # distinct child {i}\n" * 3,
                          parent_ids=[parent.id], plan_step=f"child {i}") for i in range(4)]


class Recorder:
    """An evaluator that takes a while and remembers how many calls overlapped."""

    def __init__(self):
        self.lock, self.running, self.peak, self.calls = threading.Lock(), 0, 0, 0

    def __call__(self, task, solution, cfg):
        with self.lock:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)
        time.sleep(0.3)
        with self.lock:
            self.running -= 1
        if "child 2" in Path(solution).read_text():
            raise RuntimeError("worker lost")
        return {"verdict": "same", "correct": True, "compiled": True, "speedup": 1.0, "speedup_ci": [0.98, 1.02],
                "reason": None, "checks": {}}


def test_children_are_evaluated_concurrently_and_all_stored(tmp_path):
    task = tmp_path / "task.py"
    task.write_text(TASK)
    rec = Recorder()
    pool = LocalExecutor(jobs=2, evaluator=rec)
    # the reference goes through the target's own evaluator; make it the recorder too
    store = Store.open_run_dir(tmp_path / "run")
    s = Search(task, FanOut(), store, "r", tmp_path / "run", SearchConfig(budget=8, novelty="tokens"),
               executor=pool)
    s.target.evaluate = lambda path, hidden: rec(task, path, None)
    try:
        s.run()
    finally:
        pool.shutdown()
    assert rec.peak == 2  # two at a time, never more than --jobs
    stored = store.evaluations("r")
    assert len(stored) == s.stats.evaluations == rec.calls
    lost = [e for e in stored if e.result["verdict"] == "runtime_error"]
    assert len(lost) == 1 and "worker lost" in lost[0].result["reason"]  # a lost job is a verdict
