"""kernelbench_copies splits the copies timed outside [0.9, 1.1] by their CPU-seconds speedup:
within the band there, the wall clock measured the load; outside it, one side did more work."""
from __future__ import annotations

from benchmarks.studies.kernelbench_copies import load_or_bias, table


def _rec(number: int, speedup: float, cpu: float | None, outcome: str = "same_outside_band") -> dict:
    return {"id": f"level1-{number}", "level": 1, "number": number, "name": f"{number}_task", "outcome": outcome,
            "verdict": "same", "speedup": speedup, "speedup_ci": [0.5, 2.0],
            "cpu_speedup": None if cpu is None else {"speedup": cpu, "ci": [cpu - 0.02, cpu + 0.02]}}


def test_a_copy_off_the_band_only_in_wall_time_is_load_and_one_off_in_cpu_time_is_bias():
    results = [_rec(1, 1.32, 1.003), _rec(4, 0.67, 0.78), _rec(7, 1.0, 1.0, outcome="same"), _rec(9, 1.4, None)]
    (line,) = load_or_bias(results)
    assert "2 copies timed outside" in line and "1 of them within the band in CPU seconds" in line, line
    assert "1 outside: level 1 #4 0.78" in line, line
    assert "in CPU seconds 0.780" in table(results)


def test_nothing_to_split_without_cpu_figures():
    assert load_or_bias([_rec(9, 1.4, None)]) == []


def test_a_run_cut_short_has_covered_every_level_across_its_numbers():
    from types import SimpleNamespace

    from benchmarks.studies.kernelbench_copies import spread_order

    tasks = [SimpleNamespace(level=lv, number=n, id=f"{lv}-{n}") for lv, count in ((1, 100), (2, 100), (3, 50))
             for n in range(1, count + 1)]
    order = spread_order(tasks)
    assert sorted(t.id for t in order) == sorted(t.id for t in tasks)  # every task once
    first = order[:25]  # a tenth of the run
    assert {t.level for t in first} == {1, 2, 3}, [t.id for t in first]
    for level in (1, 2, 3):
        numbers = [t.number for t in first if t.level == level]
        assert max(numbers) - min(numbers) >= 0.7 * (100 if level < 3 else 50), (level, numbers)
