"""The tests' own reports: a candidate's `--test` run must pass what the original's passed."""
from __future__ import annotations

from kopt.agent.targets.repo.test_tally import Tally, differs, tally

PYTEST = ("....s\n==== short test summary info ====\nPASSED t.py::test_a\nPASSED t.py::test_b\n"
          "SKIPPED [1] t.py:9: no backend\n==== 2 passed, 1 skipped, 2 warnings in 0.31s ====\n")
UNITTEST = "..s\n" + "-" * 70 + "\nRan 3 tests in 0.002s\n\nOK (skipped=1)\n"


def test_pytest_and_unittest_reports_are_read_without_timings_or_warnings():
    assert tally(PYTEST) == Tally([{"passed": 2, "skipped": 1}], frozenset({(0, "t.py::test_a"), (0, "t.py::test_b")}))
    assert tally(UNITTEST).summaries == [{"ran": 3, "skipped": 1}]
    assert len(tally(PYTEST + UNITTEST).summaries) == 2
    assert not tally("make: all tests ok\n")


def test_a_candidate_must_pass_what_the_original_passed():
    original = tally(PYTEST)
    assert differs(original, PYTEST.replace("0.31s", "0.05s").replace("2 warnings", "7 warnings")) is None
    swapped = PYTEST.replace("PASSED t.py::test_b", "PASSED t.py::test_c")  # same counts, another test
    assert "t.py::test_b" in differs(original, swapped)
    assert "3 skipped" in differs(tally(PYTEST.replace("PASSED t.py::test_a\nPASSED t.py::test_b\n", "")),
                                  "sss\n3 skipped in 0.01s\n")
    assert differs(original, "") is not None  # os._exit(0) while collecting
    more = PYTEST.replace("PASSED t.py::test_b\n", "PASSED t.py::test_b\nPASSED t.py::w.helper\n")
    assert differs(original, more.replace("2 passed", "3 passed")) is None  # a doctest the patch added
    assert differs(Tally(), "anything") is None  # nothing reported on the original: the exit status decides


def test_an_expected_failure_that_now_passes_is_no_loss_and_unittest_counts_what_ran():
    slow = tally("PASSED t.py::test_a\nXFAIL t.py::test_speed - slow\n1 passed, 1 xfailed in 0.1s")
    assert differs(slow, "PASSED t.py::test_a\nXPASS t.py::test_speed slow\n1 passed, 1 xpassed in 0.1s") is None
    assert differs(tally(UNITTEST), UNITTEST.replace("OK (skipped=1)", "OK (skipped=2)")) is not None
    assert differs(tally(UNITTEST), UNITTEST.replace("Ran 3", "Ran 4")) is None


def test_each_pytest_run_is_checked_by_its_own_ids_read_whole():
    first = PYTEST.replace("t.py::test_b", "t.py::test_b[n = 10]")
    original = tally(first + PYTEST)
    assert (0, "t.py::test_b[n = 10]") in original.passed and (1, "t.py::test_b") in original.passed
    swapped = first.replace("test_b[n = 10]", "test_b[n = 1000]") + PYTEST
    assert "test_b[n = 10]" in differs(original, swapped)


def test_a_passed_line_pytest_did_not_write_is_not_believed():
    forged = PYTEST.replace("no backend\n", "no backend\nPASSED t.py::test_c\n")
    assert tally(forged).passed == frozenset()  # a PASSED after a SKIPPED record, one more than passed
    assert tally(forged).blind  # the original's: counts it skipped without trustworthy ids


def test_skips_counted_without_ids_are_blind_whatever_another_run_listed():
    assert not tally(PYTEST).blind
    assert tally(PYTEST + UNITTEST).blind
    assert tally("=" * 5 + " 3 passed, 1 skipped in 0.1s").blind  # pytest without -rA's ids
    assert tally("9" * 5000 + " passed in 0.01s").summaries == [{}]  # a count no run has: no crash


def test_a_run_with_subtests_is_blind_to_which_passed():
    subtests = PYTEST.replace("2 warnings", "1 subtests passed")
    assert tally(subtests).passed == frozenset() and tally(subtests).blind
