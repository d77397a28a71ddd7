"""Red team 4, attack 8: a forward that sleeps just under the per-call timeout on every request
held kopt for ~26 timeouts (53 s at a 4 s timeout; ~22 minutes at the default 120 s) before the
verdict. The candidate's requests now share one budget: a first-call allowance plus 20x the
reference's time, so the stall ends as `timeout` after about one call timeout."""
import time

from tests.redteam._kb import run, write

TASK = """
import torch
class Model(torch.nn.Module):
    def forward(self, x):
        return x * 2
def get_inputs():
    return [torch.randn(64, 64)]
def get_init_inputs():
    return []
"""

STALL = """
import time
import torch
class ModelNew(torch.nn.Module):
    def forward(self, x):
        time.sleep(3.5)
        return x * 2
"""


def test_a_forward_sleeping_under_the_call_timeout_is_a_timeout_within_the_budget(tmp_path):
    task, sol = write(tmp_path, "task.py", TASK), write(tmp_path, "stall.py", STALL)
    start = time.monotonic()
    res = run(task, sol, call_timeout_s=4)
    took = time.monotonic() - start
    assert res["verdict"] == "timeout", res
    assert "in all against the reference's" in res["reason"], res
    assert took < 45, f"the stall still held kopt {took:.0f}s"
