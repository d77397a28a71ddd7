"""Red team 6: with `--checker float:TOL`, any number matched an expected `inf`
(|inf - y| is inf, and inf <= TOL * inf): a program printing 0.0 where the reference
printed inf was judged `same`, correct. An infinite (or NaN) token now matches only itself.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from kopt.agent.targets.program.program_inputs import Checker
from kopt.agent.targets.program.program_target import ProgramTarget


@pytest.mark.parametrize("want, got", [(b"inf", b"0"), (b"inf", b"1e308"), (b"-inf", b"inf"), (b"nan", b"1")])
def test_a_non_finite_expected_token_matches_only_itself(want, got):
    assert Checker.parse("float:1e-6").differ(want, got)


@pytest.mark.parametrize("want, got", [(b"inf", b"inf"), (b"inf", b"Infinity"), (b"1.0", b"1.0000001")])
def test_equal_values_still_match(want, got):
    assert not Checker.parse("float:1e-6").differ(want, got)


def test_a_program_printing_zero_for_inf_is_incorrect(tmp_path: Path):
    (tmp_path / "ref.py").write_text("n = int(input())\nprint(1e308 * n)\nprint(n + 0.5)\n")
    (tmp_path / "cand.py").write_text("n = int(input())\nprint(0.0)\nprint(n + 0.5)\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "1.in").write_text("3\n")
    target = ProgramTarget.from_options(tmp_path / "ref.py", tests=tests, checker="float:1e-6")
    res = target.evaluate(tmp_path / "cand.py", [])
    assert res["verdict"] == "incorrect", res


