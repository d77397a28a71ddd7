"""CUDA event times believed only as far as kopt's wall clock confirms them
(gpu_timing.wall_confirmed_ms, red team 7): the candidate's events live in its own process,
its round's wall clock does not. Synthetic rounds through the evaluator's own functions."""
from __future__ import annotations

import random

import pytest

from kopt.sandboxes.eval_session import Verdict
from kopt.sandboxes.eval_timing import _gpu_call_ms
from kopt.sandboxes.gpu_timing import WALL_SLACK_FRACTION, RoundTimes, wall_confirmed_ms
from kopt.sandboxes.timing import estimate_speedup, speed_verdict

N, DRAIN, NOISE_FLOOR = 10, 0.06, 0.1
MOST_CLAIMED = 1 / (1 - WALL_SLACK_FRACTION) + 1e-9  # the slack's share of the events, and no more


def side(kernel_ms: float, unclaimed_ms: float, claimed_ms: float | None = None) -> RoundTimes:
    """A round of N calls that truly take `kernel_ms` each, `unclaimed_ms` of harness work
    around them (flush, drain, inputs placed, outputs sent); the worker reports `claimed_ms`."""
    claimed = kernel_ms if claimed_ms is None else claimed_ms
    return RoundTimes([claimed] * N, [claimed + DRAIN] * N, N * kernel_ms + unclaimed_ms)


def call_ms(ref: RoundTimes, new: RoundTimes) -> tuple[float, float]:
    """Both sides' per-call times as the evaluator takes them from one round's replies."""
    return _gpu_call_ms({"ref": ref.kopt_wall_ms / 1000, "new": new.kopt_wall_ms / 1000,
                         "ref_gpu": (ref.event_ms, ref.call_wall_ms), "new_gpu": (new.event_ms, new.call_wall_ms)})


def speedup(ref: RoundTimes, new: RoundTimes) -> float:
    ref_ms, new_ms = call_ms(ref, new)
    return ref_ms / new_ms


@pytest.mark.parametrize("kernel_ms", [0.1, 2.0])
def test_honest_rounds_keep_their_event_times(kernel_ms):
    ref = side(kernel_ms, 1.5)
    assert speedup(ref, side(kernel_ms, 1.5)) == pytest.approx(1.0)  # a copy: same walls, same events
    half = RoundTimes([kernel_ms / 2] * N, [kernel_ms / 2 + DRAIN] * N, ref.kopt_wall_ms / 2)
    assert speedup(ref, half) == pytest.approx(2.0)  # walls and events both halved
    assert speedup(ref, side(kernel_ms / 2, 1.5)) == pytest.approx(2.0)  # a real 2x, the same harness work
    assert speedup(ref, side(kernel_ms * 3, 1.5)) == pytest.approx(1 / 3)  # slower stays slower


def speedup_or_refused(ref: RoundTimes, new: RoundTimes) -> float:
    """The speedup the evaluator takes from the round, 0 where it rejects the events."""
    try:
        return speedup(ref, new)
    except Verdict as v:
        assert v.verdict == "rejected" and "under-report" in v.reason, v.reason
        return 0.0


@pytest.mark.parametrize("kernel_ms,claimed_ms", [(0.1, 0.02), (2.0, 1.45), (2.0, 0.5)])
def test_forged_events_gain_no_more_than_the_wall_clock_shows(kernel_ms, claimed_ms):
    ref = side(kernel_ms, 1.5)
    forged = side(kernel_ms, 1.5, claimed_ms)
    assert speedup_or_refused(ref, forged) <= MOST_CLAIMED < 1 + NOISE_FLOOR
    # a real 2x that also under-reports: no more than the walls show (2x, plus the slack)
    forged_2x = side(kernel_ms / 2, 1.5, claimed_ms / 4)
    assert speedup_or_refused(ref, forged_2x) <= 2 * MOST_CLAIMED


def test_the_wall_clock_never_makes_a_candidate_slower_than_the_reference():
    """A candidate's round that holds more harness time than the reference's (noise) is
    raised to the reference's events at most, never past them."""
    ref = side(1.0, 1.5)
    noisy_copy = side(1.0, 4.0)
    assert wall_confirmed_ms(ref, noisy_copy) == pytest.approx(1.0)
    noisy_2x = side(0.5, 2.0)  # 0.5 ms more harness time than the reference's round
    assert 1.0 > wall_confirmed_ms(ref, noisy_2x) > 0.5


def _verdict(kind: str, noise_ms: float, seed: int) -> tuple[float, str]:
    """20 rounds of 1 ms of kernels each, 5 ms of harness work that varies by `noise_ms`
    (standard deviation, each side on its own), the events within 1% of the truth."""
    rng = random.Random(seed)
    ref_ms, new_ms = [], []
    for _ in range(20):
        kernel_ref = rng.gauss(0.1, 0.001)
        truth = {"copy": rng.gauss(0.1, 0.001), "2x": rng.gauss(0.05, 0.0005), "forged": rng.gauss(0.1, 0.001)}[kind]
        claimed = 0.02 if kind == "forged" else truth
        ref = side(kernel_ref, 5.0 + rng.gauss(0, noise_ms))
        new = RoundTimes([claimed] * N, [claimed + DRAIN] * N, N * truth + 5.0 + rng.gauss(0, noise_ms))
        r, c = call_ms(ref, new)
        ref_ms.append(r)
        new_ms.append(c)
    est = estimate_speedup(ref_ms, new_ms, seed=seed)
    return est.speedup, speed_verdict(est, NOISE_FLOOR)


@pytest.mark.parametrize("noise_ms", [0.0, 0.05, 0.2])
def test_verdicts_over_noisy_rounds(noise_ms):
    """Over rounds whose harness time varies (each side on its own, up to 20% of the kernels'
    time), the median keeps a copy `same` and a real 2x `faster`; forged events stay `same`
    (where the harness time varies by 20% of the kernels', their figure may read up to ~1.25x)."""
    runs = {kind: [_verdict(kind, noise_ms, seed) for seed in range(10)] for kind in ("copy", "2x", "forged")}
    assert all(v == "same" and 0.95 < s < 1.05 for s, v in runs["copy"]), runs["copy"]
    assert all(v == "faster" and 1.5 < s < 2.1 for s, v in runs["2x"]), runs["2x"]
    assert all(v == "same" for s, v in runs["forged"]), runs["forged"]
    if noise_ms <= 0.05:  # the wall clock confirms to within its noise: the figure too stays put
        assert sorted(s for s, _ in runs["forged"])[5] < 1 + NOISE_FLOOR / 2 + 0.01, runs["forged"]
