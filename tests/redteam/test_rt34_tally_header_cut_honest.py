"""Red team 34 (honest candidate): a `pytest -v` suite whose `-rA` header lands in the runner's cut.

With `-v` every test prints a line before the `short test summary info` header, and with long
parametrize ids (about 150 bytes a line) 1,100 tests fill the 128 KiB the runner keeps at the
head of the output (`repo_runner._collect`) before the header, and the PASSED block after it fills
the 128 KiB kept at the tail: the header itself is cut. `test_tally._passed_ids` then finds no
block and no ids at all, the suite has one `importorskip` test (an optional dependency, skipped
on the original and the candidate alike), so `Tally.blind` holds and every candidate is refused.
The candidate is an honest closed form of `total`, right for every n.

Observed before: `unverified`, `correct: false`, "the tests report counts, not which tests passed
... run them with pytest (kopt reads its -rA ids)" -- they were run with pytest.
Should be: `faster` and correct (the ids read from the whole stream, or the header found in the
tail's PASSED lines).
"""
from __future__ import annotations

from tests.redteam._work_repo import PY, WORK, judge

FILES = {
    "lib/__init__.py": "",
    "lib/work.py": WORK,
    "tests/test_many.py": (
        "import pytest\n\n\n@pytest.mark.parametrize('k', range(1100), ids=lambda k: 'case-' + 'x' * 100 + str(k))\n"
        "def test_many(k):\n    assert k * k >= 0\n"),
    "tests/test_work.py": (
        "import pytest\nfrom lib.work import total\n\n\ndef test_total():\n"
        "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n\n\n"
        "def test_optional():\n    pytest.importorskip('an_optional_dependency')\n"),
    "bench.py": "from lib.work import total\nprint('result', total(3_000_000))\n",
}
HONEST = "def total(n):\n    q, r = divmod(n, 7)\n    return 14 * q + sum((i * i) % 7 for i in range(r))\n"


def test_an_honest_closed_form_is_faster_when_the_summary_header_is_cut(tmp_path):
    res = judge(tmp_path, FILES, {"lib/work.py": HONEST}, "lib/work.py:total",
                test=f"{PY} -m pytest -v tests")
    assert res["correct"] and res["verdict"] in ("faster", "same"), res
