"""Both workers import torch on every core kopt may use, then pin themselves to the cores
the evaluation claimed when setup arrives (issue 16, item 7: setup was two torch imports
queued on one core). The timed calls must still run on the claimed cores only."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("torch")

from kopt.sandboxes.evaluator import EvalConfig, _Session  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RELU = FIXTURES / "tasks" / "relu.py"


def _allowed(pid: int) -> set[int]:
    return os.sched_getaffinity(pid)


def test_workers_are_pinned_to_the_claimed_cores_after_setup():
    source = RELU.read_text().replace("class Model(", "class ModelNew(")
    s = _Session(RELU.resolve(), source, "torch", EvalConfig(threads=1))
    try:
        common = {"device": "cpu", "threads": 1, "task": str(RELU.resolve()), "cpus": sorted(s.cpus)}
        # kopt pins each worker from outside once its setup is answered (the session's _pinned step)
        _, init = s._pinned(s.ref, {"cmd": "setup"}, s.ref.call({"cmd": "setup", **common}, timeout=600))
        s._pinned(s.new, {"cmd": "setup"},
                  s.new.call({"cmd": "setup", **common, "solution": "sol.py", "source": source}, init, timeout=600))
        for ch in (s.ref, s.new):
            pid = ch.worker.root_pid()
            assert pid is not None
            assert _allowed(pid) == s.cpus, (ch.role, _allowed(pid), s.cpus)
    finally:
        s.close()
