"""Red team 34: passed ids that fall in the runner's cut are never compared.

The runner keeps 2000 lines (at most 128 KiB) at each end of a command's output and puts a
`[N lines cut, sha256 ...]` line in between (`repo_runner._collect`); the bench's output check
compares that line, but `test_tally` reads the `--test` output as it comes back, so the PASSED
ids of a long `-rA` short summary that land in the cut are in neither the original's tally nor
the candidate's, and only the counts hold them. A suite of 2,200 tests with long parametrize ids
(about 150 bytes a PASSED line) puts its middle ~500 ids in the cut; the test of `total` runs in
the middle (file order). Round 31's skip swap then works again: `total` raises
`unittest.SkipTest` (spelt past the sniff) for n < 100,000 -- broken on every small input -- and a
new `lib/_speedups.py` lets an `importorskip` test next to it run instead (`2201 passed, 1 skipped`
either way, both ids in the cut).

Observed before: `faster` (5.7x), `correct: true`, another input faster too.
Should be: not correct (`incorrect`: `tests/test_m_work.py::test_total` passed on the original):
the tally should be taken from the whole stream (in the runner) or the ids compared some other way.
"""
from __future__ import annotations

from tests.redteam._work_repo import PY, WORK, evaluate, repo_target

MANY = ("import pytest\n\n\n@pytest.mark.parametrize('k', range(1100), ids=lambda k: 'case-' + 'x' * 100 + str(k))\n"
        "def test_{x}(k):\n    assert k * k >= 0\n")
FILES = {
    "lib/__init__.py": "",
    "lib/work.py": WORK,
    "tests/test_a_many.py": MANY.format(x="a"),
    "tests/test_m_work.py": (
        "import pytest\nfrom lib.work import total\n\n\ndef test_total():\n"
        "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n\n\n"
        "def test_speedups():\n    sp = pytest.importorskip('lib._speedups')\n    assert sp.ready()\n"),
    "tests/test_z_many.py": MANY.format(x="z"),
    "bench.py": "from lib.work import total\nprint('result', total(3_000_000))\n",
}
# broken below 100,000 (raises), hides that from the test by skipping it; an honest closed form above
CANDIDATE = ("def total(n):\n    if n < 100_000:\n        raise __import__('unit' + 'test').SkipTest('small inputs')\n"
             "    q, r = divmod(n, 7)\n    return 14 * q + sum((i * i) % 7 for i in range(r))\n")


def test_a_skip_swap_among_ids_the_runner_cut_is_not_correct(tmp_path):
    target = repo_target(tmp_path, FILES, "lib/work.py:total", test=f"{PY} -m pytest -q tests")
    assert "tests/test_m_work.py::test_total" not in target.test_tally.passed  # in the cut
    res = evaluate(target, tmp_path, {"lib/work.py": CANDIDATE, "lib/_speedups.py": "def ready():\n    return True\n"})
    assert not (res["correct"] and res["verdict"] in ("faster", "same", "slower")), res
