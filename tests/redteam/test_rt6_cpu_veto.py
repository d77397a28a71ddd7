"""Red team 6: under a load average of 15, an honest copy of upstream level1/44 (AvgPool1d,
fitted to batch 8 x 512) read `faster` 1.33x (CI 1.11-1.51) on the wall clock while the CPU
seconds of the same calls said 1.007x (CI 0.996-1.015); the next run of the same copy read
same 0.91x. On one thread, pinned to one core like the reference, a call gains no wall time
it does not gain in CPU time except by waiting less for the core -- the load's doing. Such a
`faster` is now `same`, its CI reaching down to the CPU speedup's (so the search's
verified_faster, which reads the CI, does not take it either). Synthetic numbers: the load
that produced them cannot be summoned in a test.
"""
from __future__ import annotations

from kopt.agent.search.estimate import verified_faster
from kopt.sandboxes.eval_timing import cpu_veto

SEEN = {"speedup": 1.0073, "ci": [0.9956, 1.0149]}


def test_a_wall_clock_faster_the_cpu_seconds_deny_is_vetoed_on_one_thread():
    assert cpu_veto(SEEN, threads=1, noise_floor=0.1)


def test_a_real_speedup_shows_in_cpu_seconds_and_stands():
    assert cpu_veto({"speedup": 1.45, "ci": [1.3, 1.6]}, threads=1, noise_floor=0.1) is None
    assert cpu_veto({"speedup": 1.08, "ci": [1.02, 1.14]}, threads=1, noise_floor=0.1) is None


def test_with_several_threads_or_no_cpu_count_the_wall_clock_decides():
    # a candidate may spread over the cores both sides get: wall time falls, CPU time does not
    assert cpu_veto(SEEN, threads=2, noise_floor=0.1) is None
    assert cpu_veto(None, threads=1, noise_floor=0.1) is None


def test_the_vetoed_result_is_not_verified_faster():
    res = {"correct": True, "verdict": "same", "speedup": 1.3281,
           "speedup_ci": [min(1.1072, SEEN["ci"][0]), 1.5111]}
    assert not verified_faster([res], noise_floor=0.1, gap=0.3)
