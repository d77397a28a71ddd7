"""Red team 34: a 5,000-digit count in the tests' output ends the evaluation with a traceback.

`test_tally.tally` turns every count of a line shaped like pytest's summary into `int(n)`; Python
refuses to convert a decimal string of more than 4,300 digits (`sys.get_int_max_str_digits`),
so the patched `total` printing `'9' * 5000 + ' passed in 0.01s'` (shown under `-rA`'s captured
stdout of the passing test) makes `RepoTarget.evaluate` raise `ValueError: Exceeds the limit (4300
digits)` out of `repo_bench._tests_and_warm_up` (the search turns it into a `runtime_error`
"evaluation: ValueError ..."; the API itself raises). The same holds for unittest's `Ran N tests`.

Observed before: ValueError traceback out of `RepoTarget.evaluate`.
Should be: a verdict (`incorrect`: the tests report another summary than the original's).
"""
from __future__ import annotations

from tests.redteam._work_repo import PY, WORK, judge

FILES = {
    "lib/__init__.py": "",
    "lib/work.py": WORK,
    "tests/test_work.py": ("from lib.work import total\n\n\ndef test_total():\n"
                           "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n"),
    "bench.py": "from lib.work import total\nprint('result', total(3_000_000))\n",
}
CANDIDATE = ("def total(n):\n    print('9' * 5000 + ' passed in 0.01s')\n"
             "    q, r = divmod(n, 7)\n    return 14 * q + sum((i * i) % 7 for i in range(r))\n")


def test_a_huge_count_in_the_tests_output_gets_a_verdict(tmp_path):
    res = judge(tmp_path, FILES, {"lib/work.py": CANDIDATE}, "lib/work.py:total",
                test=f"{PY} -m pytest -q tests")
    assert res["verdict"] in ("incorrect", "rejected"), res
