"""Red team 7 (by source; no GPU in the session): CUDA event times a candidate forges in its
reply (the header is built by json in its own process: a self-restoring patch between two
guard checks) were accepted within `cross_check`'s bounds. What the events leave unclaimed may
be 2x the reference's plus max(2 ms, 30% of its round), so an honest copy that reports its
events 5x smaller on 0.1 ms kernels (its call walls shifted alike) passed every check and
read 5x; on 2 ms kernels 1.38x. Now the candidate's round counts at least what kopt's wall
clock for it confirms (gpu_timing.wall_confirmed_ms): refused, or within the noise floor.
Synthetic numbers through the evaluator's own per-round function, as the gpu_timing tests."""
from __future__ import annotations

import pytest

from kopt.sandboxes.eval_session import Verdict
from kopt.sandboxes.eval_timing import _gpu_call_ms

NOISE_FLOOR = 0.1  # EvalConfig's default: `faster` needs the CI's lower bound above 1.1


@pytest.mark.parametrize("kernel_ms,claimed_ms", [(0.1, 0.02), (2.0, 1.45)])
def test_events_forged_below_the_wall_clock_are_refused(kernel_ms, claimed_ms):
    n, drain = 10, 0.06
    wall_s = (n * kernel_ms + 1.5) / 1000  # kopt's clock around the round: the same for both sides (a copy)
    times = {"ref": wall_s, "new": wall_s, "ref_gpu": ([kernel_ms] * n, [kernel_ms + drain] * n),
             "new_gpu": ([claimed_ms] * n, [claimed_ms + drain] * n)}
    try:
        ref_ms, new_ms = _gpu_call_ms(times)
    except Verdict as v:
        assert v.verdict == "rejected"
        return
    assert ref_ms / new_ms < 1 + NOISE_FLOOR / 2 + 0.01, (ref_ms, new_ms)  # the walls say 1.0x
