"""The repository bench's output check (agent/targets/repo/outputs.py) on printed rows and timings."""
from __future__ import annotations

from kopt.agent.targets.repo.outputs import OutputCheck


def _learnt(reference: str, *others: str) -> OutputCheck:
    check = OutputCheck(None, reference)
    for other in others:
        check.learn(other)
    return check


def test_a_rows_steady_fields_stay_compared_beside_its_varying_time():
    row = _learnt("n,ms,sum\n1000000,152,1999998", "n,ms,sum\n1000000,148,1999998", "n,ms,sum\n1000000,161,1999998")
    assert row.differs("n,ms,sum\n1000000,5,1999998") is None
    assert row.differs("n,ms,sum\n1000000,5,999998") is not None  # the checksum is still the answer
    lead = _learnt("check,ms\n001,361.4", "check,ms\n001,358.2")
    assert lead.differs("check,ms\n001,0.0") is None
    assert lead.differs("check,ms\n000,150.3") is not None


def test_a_time_grouped_in_thousands_may_print_fewer_groups():
    timing = _learnt("took 101,234,567 ns", "took 98,765,432 ns")
    assert timing.differs("took 11,700 ns") is None and timing.differs("took 5 ns") is None


def test_an_output_of_labelled_timings_and_echoed_inputs_checks_nothing():
    assert _learnt("elapsed: 153.2 ms", "elapsed: 151.0 ms").empty
    echo = _learnt("total(6000000) took 361.4 ms", "total(6000000) took 351.4 ms")
    echo.inputs = {6000000.0}
    assert echo.empty
    assert not _learnt("check passed in 361.4 ms", "check passed in 351.4 ms").empty  # a verdict word
    assert not _learnt("result: 5999999\nelapsed: 153.2 ms", "result: 5999999\nelapsed: 151.0 ms").empty
