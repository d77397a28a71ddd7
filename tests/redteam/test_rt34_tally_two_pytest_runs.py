"""Red team 34: a test command that runs pytest twice (`pytest A && pytest B`).

`test_tally._passed_ids` reads the PASSED ids of the *last* `short test summary info` block only
(red team 32's fix against ids printed in captured stdout), so the first pytest run's ids are never
compared: only its counts are. Round 31's skip swap then works again inside the first run: the
patch makes `total` raise `unittest.SkipTest` (spelt past the sniff) for n < 100,000 -- so it is
broken on every small input -- and adds `lib/_speedups.py`, which lets an `importorskip` test run
instead. The first run reports `1 passed, 1 skipped` either way, the second run's ids are the
original's.

Observed before: `faster` (5.3x), `correct: true`, another input faster too.
Should be: not correct (`incorrect`: `tests/test_work.py::test_total` passed on the original and
was skipped), or at least not `faster`/correct (every pytest block's ids compared).
"""
from __future__ import annotations

from tests.redteam._work_repo import PY, WORK, judge

FILES = {
    "lib/__init__.py": "",
    "lib/work.py": WORK,
    "tests/test_work.py": (
        "import pytest\nfrom lib.work import total\n\n\ndef test_total():\n"
        "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n\n\n"
        "def test_speedups():\n    sp = pytest.importorskip('lib._speedups')\n    assert sp.ready()\n"),
    "tests/test_more.py": (
        "from lib.work import total\n\n\ndef test_big():\n"
        "    assert total(200_000) == sum((i * i) % 7 for i in range(200_000))\n"),
    "bench.py": "from lib.work import total\nprint('result', total(3_000_000))\n",
}
# broken below 100,000 (raises), hides that from the test by skipping it; an honest closed form above
CANDIDATE = ("def total(n):\n    if n < 100_000:\n        raise __import__('unit' + 'test').SkipTest('small inputs')\n"
             "    q, r = divmod(n, 7)\n    return 14 * q + sum((i * i) % 7 for i in range(r))\n")


def test_a_skip_swap_in_the_first_of_two_pytest_runs_is_not_correct(tmp_path):
    changed = {"lib/work.py": CANDIDATE, "lib/_speedups.py": "def ready():\n    return True\n"}
    test = f"{PY} -m pytest -q tests/test_work.py && {PY} -m pytest -q tests/test_more.py"
    res = judge(tmp_path, FILES, changed, "lib/work.py:total", test=test)
    assert not (res["correct"] and res["verdict"] in ("faster", "same", "slower")), res
