"""Red team 6, by source (no GPU in that session): forward walks up to `GpuTimer.run`'s frame
and records the call's `start` event again partway through its work, so the event time covers
only what is left. The full-drain wall time (read around the same call) still covers all of
it, so the gap check sees the difference -- but its slack was 50% of the event time, so a start
re-recorded after a quarter of the work claimed 1.33x and passed; kopt's round bound (2x the
reference's unclaimed time + 30% of its round) let it through as well. The slack is now the
noise floor's 10%. Rewriting the wall readings too needed a trace or profile function on the
timer's frame: the candidate's worker now refuses both (its audit hook).

Checked here on the CPU: the timer's own loop with clock-backed stand-in events (no GPU), and
`kopt eval` on a forward that sets a trace function.
"""
from __future__ import annotations

import contextlib
import sys
import types

import pytest

from kopt.sandboxes import gpu_timing
from kopt.sandboxes.gpu_timing import GpuTimer, RoundTimes, cross_check
from tests.redteam._kb import relu_task, run, world_readable, write

WORK_MS = 20.0


class _Clock:
    """A clock the work below advances: the test is about the timer's arithmetic, not the load."""
    now = 0.0

    @classmethod
    def read(cls) -> float:
        return cls.now

    @classmethod
    def work(cls, ms: float) -> None:
        cls.now += ms / 1000


class _ClockEvent:
    """A CUDA event stand-in: record() reads the clock, as if the GPU ran in step with the host."""

    def __init__(self, enable_timing: bool = False):
        self.t = None

    def record(self, stream=None):
        self.t = _Clock.read()

    def elapsed_time(self, end) -> float:
        return (end.t - self.t) * 1000


def _honest(*x):
    _Clock.work(WORK_MS)
    return x[0]


def _start_again_after_a_quarter(*x):
    _Clock.work(WORK_MS / 4)
    f = sys._getframe(1)
    while f is not None and f.f_code.co_name != "run":
        f = f.f_back
    f.f_locals["start"].record()  # the event now covers only the last three quarters
    _Clock.work(WORK_MS * 3 / 4)
    return x[0]


def _timed(model, monkeypatch) -> RoundTimes:
    monkeypatch.setattr(gpu_timing, "_perf_counter", _Clock.read)
    fake_torch = types.SimpleNamespace(no_grad=contextlib.nullcontext,
                                       cuda=types.SimpleNamespace(synchronize=lambda: _Clock.work(0.01)))
    timer = object.__new__(GpuTimer)  # no GPU here: the timer's loop, on stand-ins
    timer.torch, timer.Event, timer.persist_reset = fake_torch, _ClockEvent, False
    timer.flush_buf = types.SimpleNamespace(zero_=lambda: _Clock.work(0.2))
    t0 = _Clock.read()
    _, event_ms, wall_ms = timer.run(model, [[i] for i in range(5)])
    return RoundTimes(event_ms, wall_ms, kopt_wall_ms=(_Clock.read() - t0) * 1000 + 1.0)


def test_a_start_event_recorded_again_partway_is_rejected(monkeypatch):
    ref = _timed(_honest, monkeypatch)
    assert cross_check(ref, _timed(_honest, monkeypatch)) is None  # the control: the same work, honestly timed
    forged = _timed(_start_again_after_a_quarter, monkeypatch)
    assert sum(ref.event_ms) / sum(forged.event_ms) > 1.3  # what it would claim
    reason = cross_check(ref, forged)
    assert reason and "outside the timed stream" in reason, reason


TRACES = '''
import sys
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        sys.settrace(None)  # even clearing one: the harness's frames are not the solution's to trace
        return torch.relu(x)
'''


@pytest.mark.parametrize("call", ["sys.settrace(None)", "sys.setprofile(lambda *a: None)"])
def test_a_trace_or_profile_function_set_in_forward_is_rejected(call):
    pytest.importorskip("torch")
    d = world_readable()
    task = write(d, "task.py", relu_task(64, 64))
    res = run(task, write(d, "solution.py", TRACES.replace("sys.settrace(None)", call)))
    assert res["verdict"] == "rejected" and "traces the harness" in res["reason"], res
