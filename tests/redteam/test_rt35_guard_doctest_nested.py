"""Red team 35, repository target, guard (`doctest_lost`, round 34): --test is
`python -m doctest lib/work.py`, the hot file's docstring example `>>> total(1000)` / `2001`
is the test. `doctest_lost` counts (source, want) pairs in every docstring `ast.walk` finds,
nested functions included; `doctest` runs only the module's, its classes' and its top-level
functions' docstrings. The patch moves the example into the docstring of a function nested
inside `total` (never run), and `total` returns `2 * n` below n = 100,000 (a closed form
above). The doctest command runs nothing and exits 0; the bench (n = 6,000,000) is right.
Observed: `faster`, correct. Expected: `rejected` (the example no longer runs) or
`incorrect` (total(1000) is 2000, not 2001)."""

from __future__ import annotations

from tests.redteam._work_repo import PY, judge

WORK = (
    'def total(n):\n    """The sum of i * i % 7 over range(n).\n\n    >>> total(1000)\n    2001\n    """\n'
    "    s = 0\n    for i in range(n):\n        s += (i * i) % 7\n    return s\n"
)
HIDDEN = (
    'def total(n):\n    def reference():\n        """The sum of i * i % 7 over range(n).\n\n'
    '        >>> total(1000)\n        2001\n        """\n'
    "    if n < 100000:  # wrong: the sum is not 2n\n        return 2 * n\n"
    "    return n // 7 * 14 + sum((0, 1, 4, 2, 2, 4, 1)[:n % 7])\n"
)
BENCH = (
    "import time\nfrom lib.work import total\n\nn = 6000000\nt0 = time.perf_counter()\n"
    'print(f"total: {total(n)}")\nprint(f"elapsed: {(time.perf_counter() - t0) / 0.001:.1f} ms")\n'
)


def test_a_doctest_moved_where_doctest_does_not_look_is_lost(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK, "bench.py": BENCH}
    res = judge(
        tmp_path, files, {"lib/work.py": HIDDEN}, focus="lib/work.py:total", test=f"{PY} -m doctest lib/work.py"
    )
    assert not (res["verdict"] == "faster" and res["correct"]), {
        k: res.get(k) for k in ("verdict", "correct", "reason", "checks")
    }
