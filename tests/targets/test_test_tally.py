"""The tests' own summaries: a candidate's `--test` run must report the original's counts."""
from __future__ import annotations

from kopt.agent.targets.repo.test_tally import differs, tally

PYTEST = "....s\n==== 4 passed, 1 skipped, 2 warnings in 0.31s ====\n"
UNITTEST = "..s\n" + "-" * 70 + "\nRan 3 tests in 0.002s\n\nOK (skipped=1)\n"


def test_pytest_and_unittest_summaries_are_read_without_timings_or_warnings():
    assert tally(PYTEST) == [{"passed": 4, "skipped": 1}]
    assert tally(UNITTEST) == [{"ran": 3, "skipped": 1}]
    assert tally(PYTEST + UNITTEST) == [{"passed": 4, "skipped": 1}, {"ran": 3, "skipped": 1}]
    assert tally("make: all tests ok\n") == []


def test_a_run_reporting_other_counts_differs_and_the_same_counts_do_not():
    original = tally(PYTEST)
    assert differs(original, PYTEST.replace("0.31s", "0.05s").replace("2 warnings", "7 warnings")) is None
    assert "5 skipped" in differs(original, "sssss\n5 skipped in 0.01s\n")
    assert "no test summary" in differs(original, "")  # os._exit(0) while collecting
    assert "3 passed" in differs(original, "3 passed, 1 skipped, 1 deselected in 0.2s\n")
    assert differs([], "anything") is None  # no summary on the original: the exit status decides
