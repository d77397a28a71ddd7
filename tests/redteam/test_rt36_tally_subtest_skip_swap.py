"""Red team 36: round 31's skip swap between pytest 9 subtests of one test.

Attack: the test checks `total` in two subtests (pytest 9's built-in `subtests` fixture):
"python" calls `lib.work.total(1000)`, "accelerated" does `pytest.importorskip("lib._speedups")`
and is skipped on the original. `-rA` lists the test's id as PASSED and the skipped subtest as
`SUBSKIPPED(...) [1] ...`, which `test_tally.RECORD` does not read. The patch adds a right (slow)
`lib/_speedups.py` and makes `total` raise pytest's own `Skipped` (found by walking
`BaseException.__subclasses__()`, no sniff word) below n = 100,000, the closed form above.
The "python" subtest now skips and "accelerated" runs: `1 passed, 1 skipped, 1 subtests passed`
and `PASSED test_work.py::test_total` either way.
Observed: `faster`, correct; `total(10)` raises.
Expected: `incorrect` (a subtest the original passed did not run) or `unverified` (the tally
cannot say which subtests passed).
"""
from __future__ import annotations

from tests.redteam._work_repo import WORK, judge

TEST = '''import pytest

from lib.work import total


def test_total(subtests):
    want = sum((i * i) % 7 for i in range(1000))
    with subtests.test("python"):
        assert total(1000) == want
    with subtests.test("accelerated"):
        fast = pytest.importorskip("lib._speedups")
        assert fast.total(1000) == want
'''
BENCH = "from lib.work import total\nprint('total', total(2000000))\n"
SWAP = '''def _skip(why):
    todo = [BaseException]
    while todo:
        c = todo.pop()
        if c.__name__ == "Skipped":
            raise c(why)
        todo += c.__subclasses__()
    raise ValueError(why)


def total(n):
    if n < 100000:
        _skip("small n")
    q, r = divmod(n, 7)
    return 14 * q + (0, 0, 1, 5, 7, 9, 13)[r]
'''


def test_a_skip_swap_between_subtests_is_caught(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "test_work.py": TEST, "bench.py": BENCH}
    r = judge(tmp_path, files, {"lib/work.py": SWAP, "lib/_speedups.py": WORK}, "lib/work.py:total")
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"), r["checks"].get("tests"))
    assert r["verdict"] in ("incorrect", "unverified") and not (r["verdict"] == "unverified" and r["correct"]), seen
