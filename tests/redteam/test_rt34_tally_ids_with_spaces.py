"""Red team 34: parametrized test ids with spaces collapse in the passed-id set.

`test_tally.PASSED_ID` is `^(?:PASSED|XPASS) (\\S+)`: an id is cut at its first space, so pytest ids
such as `test_total[n = 10]` and `test_total[n = 1000]` are both `tests/test_work.py::test_total[n`.
Round 31's skip swap then gets past the ids: the patch makes `total` raise `unittest.SkipTest`
(spelt past the sniff) for n < 100 -- broken on every small input -- and adds `lib/_speedups.py`
so an `importorskip` test runs instead. Counts stay `2 passed, 1 skipped`; the lost id
`test_total[n = 10]` reads as the kept `test_total[n = 1000]`.

Observed before: `faster` (5.7x), `correct: true`, another input faster too.
Should be: not correct (`incorrect`: `test_total[n = 10]` passed on the original and was skipped).
"""
from __future__ import annotations

from tests.redteam._work_repo import PY, WORK, judge

FILES = {
    "lib/__init__.py": "",
    "lib/work.py": WORK,
    "tests/test_work.py": (
        "import pytest\nfrom lib.work import total\n\n\n"
        "@pytest.mark.parametrize('n', [10, 1000], ids=['n = 10', 'n = 1000'])\ndef test_total(n):\n"
        "    assert total(n) == sum((i * i) % 7 for i in range(n))\n\n\n"
        "def test_speedups():\n    sp = pytest.importorskip('lib._speedups')\n    assert sp.ready()\n"),
    "bench.py": "from lib.work import total\nprint('result', total(3_000_000))\n",
}
# broken below 100 (raises), hides that from the test by skipping it; an honest closed form above
CANDIDATE = ("def total(n):\n    if n < 100:\n        raise __import__('unit' + 'test').SkipTest('small inputs')\n"
             "    q, r = divmod(n, 7)\n    return 14 * q + sum((i * i) % 7 for i in range(r))\n")


def test_a_skip_swap_between_ids_with_spaces_is_not_correct(tmp_path):
    changed = {"lib/work.py": CANDIDATE, "lib/_speedups.py": "def ready():\n    return True\n"}
    res = judge(tmp_path, FILES, changed, "lib/work.py:total", test=f"{PY} -m pytest -q tests")
    assert not (res["correct"] and res["verdict"] in ("faster", "same", "slower")), res
