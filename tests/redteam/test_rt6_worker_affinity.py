"""Red team 6: the candidate may not use cores the reference does not get.

Rounds 4 and 5: `sched_setaffinity` to every core (and more torch threads) in forward went
unseen (`same` on 2 loaded cores, unverified on an idle many-core machine). Now kopt pins
both workers' threads from outside after setup, the jail's seccomp filter refuses
sched_setaffinity, and, where that filter is off, kopt reads every thread's
Cpus_allowed_list after each step: wider than the evaluation's cores is `rejected`.
"""
from __future__ import annotations

import os

import pytest

from tests.redteam._kb import relu_task, run, world_readable, write

pytest.importorskip("torch")

TASK = relu_task(64, 256)

WIDEN = '''
import os

import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        try:
            os.sched_setaffinity(0, range(os.cpu_count()))
        except OSError as e:
            raise RuntimeError(f"could not widen the affinity: {e}") from None
        torch.set_num_threads(os.cpu_count())
        return torch.relu(x)
'''


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: there is nothing to widen to")
def test_a_candidate_that_widens_its_cpu_affinity_gets_no_extra_cores():
    d = world_readable()
    res = run(write(d, "task.py", TASK), write(d, "solution.py", WIDEN))
    if res["verdict"] == "runtime_error":  # the jail's seccomp filter refused the call
        assert "could not widen" in res["reason"], res
    else:
        assert res["verdict"] == "rejected" and "affinity" in res["reason"], res
