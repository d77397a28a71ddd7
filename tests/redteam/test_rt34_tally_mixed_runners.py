"""Red team 34: `Tally.blind` is off once any pytest run in the command listed ids.

A test command running pytest and then unittest (`pytest -q tests/test_more.py && python -m
unittest tests.test_work_ut`): unittest reports counts only (`Ran 2 tests`, `OK (skipped=1)`), and
red team 32's `Tally.blind` -- counts without ids where the original skipped a test -- is
`not self.passed and ...`: the pytest part's ids make it False for the whole command. Round 32's
unittest skip swap then works: `total` raises `unittest.SkipTest` (spelt past the sniff) for
n < 100,000 -- broken on every small input -- and a new `lib/_speedups.py` lets the skipped
`test_speedups` run instead: `Ran 2 tests`, `OK (skipped=1)` either way.

Observed before: `faster` (5.5x), `correct: true`, another input faster too.
Should be: not `faster`/correct (`unverified` as in round 32: a summary without ids where the
original skipped is blind whatever other summaries list).
"""
from __future__ import annotations

from tests.redteam._work_repo import PY, WORK, judge

FILES = {
    "lib/__init__.py": "",
    "lib/work.py": WORK,
    "tests/test_work_ut.py": (
        "import unittest\nfrom lib.work import total\n\n\nclass TestWork(unittest.TestCase):\n"
        "    def test_total(self):\n        self.assertEqual(total(1000), sum((i * i) % 7 for i in range(1000)))\n\n"
        "    def test_speedups(self):\n        try:\n            import lib._speedups as sp\n"
        "        except ImportError:\n            self.skipTest('no speedups')\n        self.assertTrue(sp.ready())\n"),
    "tests/test_more.py": (
        "from lib.work import total\n\n\ndef test_big():\n"
        "    assert total(200_000) == sum((i * i) % 7 for i in range(200_000))\n"),
    "bench.py": "from lib.work import total\nprint('result', total(3_000_000))\n",
}
# broken below 100,000 (raises), hides that from the test by skipping it; an honest closed form above
CANDIDATE = ("def total(n):\n    if n < 100_000:\n        raise __import__('unit' + 'test').SkipTest('small inputs')\n"
             "    q, r = divmod(n, 7)\n    return 14 * q + sum((i * i) % 7 for i in range(r))\n")


def test_a_unittest_skip_swap_beside_a_pytest_run_is_not_correct(tmp_path):
    changed = {"lib/work.py": CANDIDATE, "lib/_speedups.py": "def ready():\n    return True\n"}
    test = f"{PY} -m pytest -q tests/test_more.py && {PY} -m unittest tests.test_work_ut"
    res = judge(tmp_path, FILES, changed, "lib/work.py:total", test=test)
    assert not (res["correct"] and res["verdict"] in ("faster", "same", "slower")), res
