"""Evaluations running at once in one kopt get their own cores where there are enough.

Both workers of an evaluation share its cores (they run in turn); two evaluations at once
(`kopt bench --jobs 2`) used to pin all four workers to the same first cores, and honest
copies read 0.72-0.77x there."""
from __future__ import annotations

import os

import pytest

from kopt.sandboxes.evaluator import _claim_cpus, _release_cpus


def test_two_evaluations_at_once_get_disjoint_cores():
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        pytest.skip("one core: nothing to split")
    n = cores // 2
    first, second = _claim_cpus(n), _claim_cpus(n)
    try:
        assert len(first) == len(second) == n and not first & second
    finally:
        _release_cpus(first)
        _release_cpus(second)
    again = _claim_cpus(n)  # released cores are handed out again, lowest first
    _release_cpus(again)
    assert again == first
