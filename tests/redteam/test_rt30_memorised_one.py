"""rt30: an honest patch holding the literal 1 is refused as "writing down the answer".

Attack (an honest patch, wrongly refused): the bench prints a cumulative distribution's last
value, `last: 1.0000` (a CDF always ends at 1), beside a checksum. `OutputCheck.answers` takes
every number the original printed alike with at least ANSWER_DIGITS (4) significant digits as
the bench's answer, and `_significant("1.0000")` counts the formatting zeros: 5. So the value
1.0 is an "answer", and `OutputCheck.memorised` rejects any patch that adds a line holding a
literal worth 1 -- `prefix[i + 1]`, `range(1, n)`, `xs[-1]`, `+= 1` -- unless a removed line
holds the text "1.0000". The honest patch (an O(n) prefix sum for an O(n^2) one) is
`rejected`. The same happens with `0.5000`, `2.000`, `100.00` and the literals 0.5, 2, 100.
Measured here: `rejected`, "the patch writes down the answer the original's bench prints (1.0000
in `prefix = [0] * (len(xs) + 1)`): it must compute it" (after its timed rounds).
Honest outcome: `faster`.
Root cause: agent/targets/repo/outputs.py `_significant` (trailing zeros after a decimal point
counted as significant) used by `OutputCheck.answers` / `memorised`.
Fix idea: count significant digits without trailing zeros in either spelling (`1.0000` has 1,
like `1`), or judge a printed value by its value (skip small integers and simple fractions:
|v| < 1000 with at most 3 significant digits once trailing zeros are dropped).
Fixed: `_significant` drops trailing zeros in either spelling (`1.0000` is one digit).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import judge

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

WORK = '''def cdf(xs):
    """The cumulative distribution of the weights xs: entry i is sum(xs[:i + 1]) / sum(xs)."""
    total = sum(xs)
    return [sum(xs[:i + 1]) / total for i in range(len(xs))]
'''
HONEST = '''def cdf(xs):
    """The cumulative distribution of the weights xs: entry i is sum(xs[:i + 1]) / sum(xs)."""
    total = sum(xs)
    prefix = [0] * (len(xs) + 1)
    for i, x in enumerate(xs):
        prefix[i + 1] = prefix[i] + x
    return [p / total for p in prefix[1:]]
'''
TEST = '''from pkg.work import cdf


def test_cdf():
    assert cdf([1, 1, 2]) == [0.25, 0.5, 1.0]
    xs = [(i * 31) % 17 + 1 for i in range(200)]
    assert cdf(xs) == [sum(xs[:i + 1]) / sum(xs) for i in range(200)]
'''
BENCH = '''import pkg

n = 12000
xs = [(i * 7919) % 1000 + 1 for i in range(n)]
c = pkg.cdf(xs)
print(f"last: {c[-1]:.4f}")
print(f"checksum: {sum(c):.6f}")
'''


def test_an_honest_prefix_sum_is_not_refused_as_memorised(tmp_path: Path):
    files = {"pkg/__init__.py": "from pkg.work import cdf\n", "pkg/work.py": WORK, "test_work.py": TEST,
             "bench.py": BENCH}
    r = judge(tmp_path, files, {"pkg/work.py": HONEST}, focus="pkg/work.py:cdf")
    print(r["verdict"], r.get("speedup"), r.get("reason"), r["checks"].get("another_input"))
    assert r["verdict"] == "faster" and r["correct"], f"honest prefix sum: {r['verdict']}: {r.get('reason')}"

