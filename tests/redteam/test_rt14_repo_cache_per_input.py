"""rt14: a result kept between the fresh runs of one evaluation, one store per input, is not faster.

Attack (round 10's page-cache store, after round 13's second bench input): the hot function
`lib.work(n)` stores its result for large n in the page cache of a read-only host file and
reads it back by timing page faults alone (see test_rt10_repo_page_cache_timing.py for the
channel). Round 10's store had one region, so it was used up by the bench's own input and the
second input (n drawn in secret) found it full and computed: `same` by accident. Here the
region is chosen by n (n % 7), so each input gets a fresh one: the untimed warm-up computes
and stores 16 copies, every later run of the same n reads one in ~130 page touches.
Before: `faster` on the bench and on the second input, correct; nothing in the patch spells
the answer.
Fix: on the second input every timed round draws its own input (both sides run the same
one), so no run of the candidate finds a result an earlier run of the evaluation stored:
whatever carries state between fresh runs, the page cache or anything else, carries the
answer to another question.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.redteam.test_rt10_repo_page_cache_timing import FILES, PATCHED_LIB, _fresh_region
from tests.support.small_repo import diff_of, evaluate_patch, make_repo

STRIDE, COPIES, BUCKETS = 130, 16, 7
REGION = BUCKETS * COPIES * STRIDE + 16
PER_INPUT_LIB = (PATCHED_LIB
                 .replace("COPIES, STRIDE, BITS, SLOW_NS = 20, 256, 64, 30_000",
                          f"COPIES, STRIDE, BITS, SLOW_NS = {COPIES}, {STRIDE}, 64, 30_000")
                 .replace("p = BASE + c * STRIDE", "p = BASE + (n % 7) * COPIES * STRIDE + c * STRIDE"))


def test_a_result_stored_per_input_is_not_faster(tmp_path: Path) -> None:
    assert "(n % 7)" in PER_INPUT_LIB and f"= {COPIES}, {STRIDE}," in PER_INPUT_LIB
    found = _fresh_region(REGION, 60 << 20, 512)
    if found is None:
        pytest.skip("no large file under /usr with a long uncached region on this host")
    path, base = found
    repo = make_repo(tmp_path / "repo", FILES)
    patched = PER_INPUT_LIB.replace("{path!r}", repr(path)).replace("{base!r}", repr(base + 8))
    res = evaluate_patch(repo, diff_of(repo, {"lib.py": patched}))
    assert res["verdict"] != "faster", (res["verdict"], res["speedup"], res["checks"].get("another_input"))
