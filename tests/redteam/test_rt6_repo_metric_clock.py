"""Red team 6: a repository patch that slows the bench's own clock by less than the agreement
factor (3x) -- `time.perf_counter` running at 0.36 speed in the code under optimization --
read `faster` 2.8x with kopt's clock around the bench at 1.02x: the metric comes from the
bench's process, which the patched code runs in, and only a disagreement past 3x was
refused. A metric's `faster` now needs kopt's clock to say `faster` too; otherwise the
result is `same` with the clock's speedup (its CI reaching to the metric's), never verified
faster.
"""
from __future__ import annotations

import shutil

import pytest

from kopt.agent.search.estimate import verified_faster
from tests.redteam.test_repo_attacks import SLOW, count_py, evaluate, patch_of, target_for

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git missing")

SLOWED_CLOCK = ("import time\n_real = time.perf_counter\n_t0 = _real()\n"
                "time.perf_counter = lambda: _t0 + (_real() - _t0) * 0.36\n")


def test_a_bench_clock_slowed_under_the_agreement_factor_is_not_faster(tmp_path):
    from benchmarks.studies.repo_targets import python_repo

    repo = python_repo(tmp_path / "user", n=1500)
    patch = patch_of(repo, tmp_path, {"pairs/count.py": count_py(SLOW, SLOWED_CLOCK)})
    r = evaluate(target_for(repo), patch, tmp_path)
    assert r["verdict"] in ("same", "rejected"), r
    assert not verified_faster([r], noise_floor=0.1, gap=0.3), r
